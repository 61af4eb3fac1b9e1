-- Depth of one kind's queue.
-- KEYS: 1 wait, 2 delayed, 3 active
return {redis.call('ZCARD', KEYS[1]), redis.call('ZCARD', KEYS[2]), redis.call('ZCARD', KEYS[3])}
