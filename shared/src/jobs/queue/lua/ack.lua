-- Remove a job from the queue: it has ended (its terminal state is recorded).
-- With a token, only the attempt holding that lease may do it.
-- A lease counted for its owner is uncounted, and pullers told.
-- KEYS: 1 active, 2 wait, 3 delayed, 4 job hash, 5 running per owner
-- ARGV: 1 id, 2 token ('' for any), 3 events channel, 4 PUBLISH or SPUBLISH
if ARGV[2] ~= '' and redis.call('HGET', KEYS[4], 'k') ~= ARGV[2] then return 0 end
local f = redis.call('HMGET', KEYS[4], 'r', 'o')
if f[1] == '1' then
  if redis.call('HINCRBY', KEYS[5], f[2] or '', -1) <= 0 then redis.call('HDEL', KEYS[5], f[2] or '') end
  redis.call(ARGV[4], ARGV[3], 'n')
end
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('DEL', KEYS[4])
return 1
