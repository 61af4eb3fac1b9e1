-- Enqueue one job, once: a job already in the queue is left as it is.
-- KEYS: 1 job hash, 2 wait, 3 delayed (one slot: the kind's hash tag)
-- ARGV: 1 id, 2 priority, 3 max attempts, 4 timeout ms, 5 delay ms,
--       6 attempts already made, 7 events channel, 8 PUBLISH or SPUBLISH, 9 owner
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('HSET', KEYS[1], 'a', ARGV[6], 'm', ARGV[3], 'p', ARGV[2], 't', ARGV[4], 'o', ARGV[9])
local delay = tonumber(ARGV[5])
if delay > 0 then
  redis.call('ZADD', KEYS[3], string.format('%.0f', now + delay), ARGV[1])
else
  -- Higher priority first, then first in, first out.
  redis.call('ZADD', KEYS[2], string.format('%.0f', (100 - tonumber(ARGV[2])) * 1e13 + now), ARGV[1])
end
redis.call(ARGV[8], ARGV[7], 'n')
return 1
