-- Read a topic's retained history after a position, with what a replay needs
-- to decide whether it is complete.
-- KEYS: 1 stream, 2 epoch, 3 trimmed marker (one hash slot)
-- ARGV: 1 first wanted id ('' for none: only the position is wanted),
--       2 most events returned, 3 candidate epoch, 4 history ttl (ms),
--       5 the epoch the client knows ('' if none)
-- Returns {epoch, last id, max deleted id, epoch changed (0/1), truncated (0/1), entries,
--          newest trimmed id}
local epoch = redis.call('GET', KEYS[2])
if not epoch then
  epoch = ARGV[3]
  redis.call('SET', KEYS[2], epoch, 'PX', ARGV[4])
end
local changed = 0
if ARGV[5] ~= '' and ARGV[5] ~= epoch then
  changed = 1
end
local last = '0-0'
local deleted = '0-0'
if redis.call('EXISTS', KEYS[1]) == 1 then
  local info = redis.call('XINFO', 'STREAM', KEYS[1])
  for i = 1, #info, 2 do
    if info[i] == 'last-generated-id' then
      last = info[i + 1]
    elseif info[i] == 'max-deleted-entry-id' then
      deleted = info[i + 1]
    end
  end
end
local entries = {}
local truncated = 0
if ARGV[1] ~= '' then
  local start = ARGV[1]
  if changed == 1 then
    start = '-'
  end
  local limit = tonumber(ARGV[2])
  entries = redis.call('XRANGE', KEYS[1], start, '+', 'COUNT', limit)
  if #entries == limit and entries[#entries][1] ~= last then
    -- More than a replay may hold: keep the newest, the client has a gap.
    local newest = redis.call('XREVRANGE', KEYS[1], '+', start, 'COUNT', limit)
    entries = {}
    for i = #newest, 1, -1 do
      entries[#entries + 1] = newest[i]
    end
    truncated = 1
  end
end
local trimmed = redis.call('GET', KEYS[3]) or '0-0'
return {epoch, last, deleted, changed, truncated, entries, trimmed}
