-- Take up to N jobs with a lease each. Due delayed jobs move to wait first.
-- With a per-owner limit, a job whose owner already runs that many jobs of
-- the kind stays waiting and the next one is taken (at most SCAN waiting
-- jobs are looked at per call); taken jobs are counted for their owner
-- (field `r` marks a counted lease) until acked, retried, released or reclaimed.
-- KEYS: 1 wait, 2 delayed, 3 active, 4 running per owner (one slot: the kind's hash tag)
-- ARGV: 1 job hash prefix, 2 lease ms, 3 worker id, 4 per-owner limit (0: none),
--       5.. one fresh token per job wanted
-- Returns {{id, token, attempt, max, timeout, cancel, exhausted}...}, ms until the next delayed job (-1: none)
local SCAN = 1000
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local due = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, 1000)
for _, id in ipairs(due) do
  redis.call('ZREM', KEYS[2], id)
  local p = redis.call('HGET', ARGV[1] .. id, 'p')
  if p then
    redis.call('ZADD', KEYS[1], string.format('%.0f', (100 - tonumber(p)) * 1e13 + now), id)
  end
end
local jobs = {}
local deadline = string.format('%.0f', now + tonumber(ARGV[2]))
local limit = tonumber(ARGV[4])
local i = 5
-- Leases `id` (already out of wait) with the next token; false if its hash is gone.
local function take(id, owner)
  local key = ARGV[1] .. id
  if redis.call('EXISTS', key) == 0 then return false end
  local f = redis.call('HMGET', key, 'a', 'm', 't', 'c', 'x')
  local attempt = tonumber(f[1])
  -- An exhausted job is handed out only to be failed: no attempt is counted.
  if f[5] ~= '1' then attempt = redis.call('HINCRBY', key, 'a', 1) end
  -- A new lease: its start time (for timeouts) and its chunks from 0.
  redis.call('HSET', key, 'k', ARGV[i], 'w', ARGV[3], 'st', now, 's', 0)
  if owner then
    redis.call('HINCRBY', KEYS[4], owner, 1)
    redis.call('HSET', key, 'r', '1')
  end
  redis.call('ZADD', KEYS[3], deadline, id)
  table.insert(jobs, {id, ARGV[i], attempt, tonumber(f[2]), tonumber(f[3]), f[4] or '0', f[5] or '0'})
  i = i + 1
  return true
end
if limit <= 0 then
  while i <= #ARGV do
    local popped = redis.call('ZPOPMIN', KEYS[1])
    if #popped == 0 then break end
    take(popped[1], nil)
  end
else
  local waiting = redis.call('ZRANGE', KEYS[1], 0, SCAN - 1)
  local running = {}
  for _, id in ipairs(waiting) do
    if i > #ARGV then break end
    local owner = redis.call('HGET', ARGV[1] .. id, 'o') or ''
    local n = running[owner]
    if n == nil then
      n = tonumber(redis.call('HGET', KEYS[4], owner) or '0')
    end
    if n < limit then
      redis.call('ZREM', KEYS[1], id)
      if take(id, owner) then n = n + 1 end
    end
    running[owner] = n
  end
end
local wait_ms = -1
local nxt = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
if #nxt == 2 then wait_ms = math.max(0, tonumber(nxt[2]) - now) end
return {jobs, wait_ms}
