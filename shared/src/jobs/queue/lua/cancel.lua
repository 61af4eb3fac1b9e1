-- Cancel a job in the queue: a waiting or delayed one is removed; a running
-- one is flagged (renewals report the flag) and its worker told at once.
-- KEYS: 1 active, 2 wait, 3 delayed, 4 job hash
-- ARGV: 1 id, 2 events channel, 3 PUBLISH or SPUBLISH
if redis.call('EXISTS', KEYS[4]) == 0 then return 'absent' end
if redis.call('ZSCORE', KEYS[1], ARGV[1]) then
  redis.call('HSET', KEYS[4], 'c', '1')
  redis.call(ARGV[3], ARGV[2], 'c:' .. ARGV[1])
  return 'signalled'
end
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('DEL', KEYS[4])
return 'removed'
