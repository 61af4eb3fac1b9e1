-- Take back jobs whose lease lapsed (their worker died or hung) and queue
-- them again; a job that has used all its attempts is marked exhausted, so
-- the next worker to take it fails it instead of running it.
-- A lease counted for its owner is uncounted.
-- KEYS: 1 active, 2 wait, 3 running per owner
-- ARGV: 1 job hash prefix, 2 most jobs to take back, 3 events channel, 4 PUBLISH or SPUBLISH
-- Returns {{id, attempt, exhausted, worker, cancel asked}...}
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local lapsed = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[2]))
local out = {}
for _, id in ipairs(lapsed) do
  redis.call('ZREM', KEYS[1], id)
  local key = ARGV[1] .. id
  if redis.call('EXISTS', key) == 1 then
    local f = redis.call('HMGET', key, 'a', 'm', 'p', 'w', 'c', 'r', 'o')
    redis.call('HDEL', key, 'k', 'w', 'r')
    if f[6] == '1' then
      if redis.call('HINCRBY', KEYS[3], f[7] or '', -1) <= 0 then redis.call('HDEL', KEYS[3], f[7] or '') end
    end
    local ex = 0
    if tonumber(f[1]) >= tonumber(f[2]) then
      redis.call('HSET', key, 'x', '1')
      ex = 1
    end
    redis.call('ZADD', KEYS[2], string.format('%.0f', (100 - tonumber(f[3])) * 1e13 + now), id)
    table.insert(out, {id, tonumber(f[1]), ex, f[4] or '', f[5] or '0'})
  end
end
if #out > 0 then redis.call(ARGV[4], ARGV[3], 'n') end
return out
