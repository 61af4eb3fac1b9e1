-- Remove a job from the queue: it has ended (its terminal state is recorded).
-- With a token, only the attempt holding that lease may do it.
-- KEYS: 1 active, 2 wait, 3 delayed, 4 job hash
-- ARGV: 1 id, 2 token ('' for any)
if ARGV[2] ~= '' and redis.call('HGET', KEYS[4], 'k') ~= ARGV[2] then return 0 end
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('DEL', KEYS[4])
return 1
