-- Publish one event: append it to the topic's stream, keep the topic's epoch,
-- and publish the ready-made event frame on the topic's channel.
-- With a fifth key (a "once" marker), the event is published only if no
-- event with that marker was published to the topic before: a repeat
-- publishes nothing and answers the first one's id.
-- KEYS: 1 stream, 2 epoch, 3 channel, 4 trimmed marker, [5 once marker] (one hash slot)
-- ARGV: 1 topic, 2 type (a JSON string literal), 3 data (JSON),
--       4 history size, 5 history ttl (ms), 6 candidate epoch, 7 PUBLISH or SPUBLISH
-- Returns {id, epoch, 1 if published now or 0 for a repeat}
local epoch = redis.call('GET', KEYS[2])
if not epoch then
  epoch = ARGV[6]
  redis.call('SET', KEYS[2], epoch)
end
if KEYS[5] then
  local first = redis.call('GET', KEYS[5])
  if first then return {first, epoch, 0} end
end
-- Trimming does not move XINFO's max-deleted-entry-id, so remember the
-- newest id this publish trims: a replay from before it is not recovered.
local maxlen = tonumber(ARGV[4])
local len = redis.call('XLEN', KEYS[1])
if len >= maxlen then
  local gone = redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', len - maxlen + 1)
  if #gone > 0 then
    redis.call('SET', KEYS[4], gone[#gone][1])
  end
end
local id = redis.call('XADD', KEYS[1], 'MAXLEN', maxlen, '*', 't', ARGV[2], 'd', ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
redis.call('PEXPIRE', KEYS[2], ARGV[5])
redis.call('PEXPIRE', KEYS[4], ARGV[5])
local ms = string.match(id, '^(%d+)-')
local frame = '{"op":"event","id":"' .. id .. '","topic":"' .. ARGV[1] .. '","type":' .. ARGV[2]
  .. ',"data":' .. ARGV[3] .. ',"ts":' .. ms .. '}'
redis.call(ARGV[7], KEYS[3], frame)
if KEYS[5] then redis.call('SET', KEYS[5], id, 'PX', ARGV[5]) end
return {id, epoch, 1}
