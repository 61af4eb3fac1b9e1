-- One lease's check and renewal, for a holder that keeps nothing between
-- calls (a worker over HTTP): renews the lease if the token still holds it,
-- optionally records the attempt's next chunk seq (after its chunks were
-- published), and reports the attempt and whether it must stop.
-- KEYS: 1 active, 2 job hash (one slot: the kind's hash tag)
-- ARGV: 1 id, 2 token, 3 lease ms, 4 next chunk seq to record (-1: none)
-- Returns {0} when the lease is not held, else
-- {1, cancel asked (0/1), timed out (0/1), attempt, max attempts, timeout ms, next chunk seq, ms since the lease began}
local f = redis.call('HMGET', KEYS[2], 'k', 'c', 'a', 'm', 't', 'st', 's')
if f[1] ~= ARGV[2] or not redis.call('ZSCORE', KEYS[1], ARGV[1]) then return {0} end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[1], string.format('%.0f', now + tonumber(ARGV[3])), ARGV[1])
local seq = tonumber(f[7] or '0')
local set = tonumber(ARGV[4])
if set >= 0 then
  redis.call('HSET', KEYS[2], 's', set)
  seq = set
end
local ran = 0
if f[6] then ran = now - tonumber(f[6]) end
local timed_out = 0
if f[6] and ran > tonumber(f[5]) then timed_out = 1 end
local cancel = 0
if f[2] == '1' then cancel = 1 end
return {1, cancel, timed_out, tonumber(f[3]), tonumber(f[4]), tonumber(f[5]), seq, ran}
