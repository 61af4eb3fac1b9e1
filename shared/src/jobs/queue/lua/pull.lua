-- Take up to N jobs with a lease each. Due delayed jobs move to wait first.
-- KEYS: 1 wait, 2 delayed, 3 active (one slot: the kind's hash tag)
-- ARGV: 1 job hash prefix, 2 lease ms, 3 worker id, 4.. one fresh token per job wanted
-- Returns {{id, token, attempt, max, timeout, cancel, exhausted}...}, ms until the next delayed job (-1: none)
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
local i = 4
while i <= #ARGV do
  local popped = redis.call('ZPOPMIN', KEYS[1])
  if #popped == 0 then break end
  local id = popped[1]
  local key = ARGV[1] .. id
  if redis.call('EXISTS', key) == 1 then
    local f = redis.call('HMGET', key, 'a', 'm', 't', 'c', 'x')
    local attempt = tonumber(f[1])
    -- An exhausted job is handed out only to be failed: no attempt is counted.
    if f[5] ~= '1' then attempt = redis.call('HINCRBY', key, 'a', 1) end
    -- A new lease: its start time (for timeouts) and its chunks from 0.
    redis.call('HSET', key, 'k', ARGV[i], 'w', ARGV[3], 'st', now, 's', 0)
    redis.call('ZADD', KEYS[3], deadline, id)
    table.insert(jobs, {id, ARGV[i], attempt, tonumber(f[2]), tonumber(f[3]), f[4] or '0', f[5] or '0'})
    i = i + 1
  end
end
local wait_ms = -1
local nxt = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
if #nxt == 2 then wait_ms = math.max(0, tonumber(nxt[2]) - now) end
return {jobs, wait_ms}
