-- Give a leased job back: to run again after a delay (retry), or at once
-- without counting the attempt (release, on worker shutdown).
-- A lease counted for its owner is uncounted.
-- KEYS: 1 active, 2 wait, 3 delayed, 4 job hash, 5 running per owner
-- ARGV: 1 id, 2 token, 3 delay ms, 4 'retry' or 'release', 5 events channel, 6 PUBLISH or SPUBLISH
if redis.call('HGET', KEYS[4], 'k') ~= ARGV[2] then return 0 end
local f = redis.call('HMGET', KEYS[4], 'r', 'o')
if f[1] == '1' then
  if redis.call('HINCRBY', KEYS[5], f[2] or '', -1) <= 0 then redis.call('HDEL', KEYS[5], f[2] or '') end
  redis.call('HDEL', KEYS[4], 'r')
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[4], 'k', 'w')
if ARGV[4] == 'release' then redis.call('HINCRBY', KEYS[4], 'a', -1) end
local delay = tonumber(ARGV[3])
if delay > 0 then
  redis.call('ZADD', KEYS[3], string.format('%.0f', now + delay), ARGV[1])
else
  local p = tonumber(redis.call('HGET', KEYS[4], 'p') or '0')
  redis.call('ZADD', KEYS[2], string.format('%.0f', (100 - p) * 1e13 + now), ARGV[1])
end
redis.call(ARGV[6], ARGV[5], 'n')
return 1
