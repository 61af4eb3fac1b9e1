-- Renew the leases a worker holds; report the ones it lost and the ones asked to stop.
-- KEYS: 1 active
-- ARGV: 1 job hash prefix, 2 lease ms, then pairs of id, token
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local deadline = string.format('%.0f', now + tonumber(ARGV[2]))
local lost, cancel = {}, {}
for i = 3, #ARGV, 2 do
  local id, token = ARGV[i], ARGV[i + 1]
  local f = redis.call('HMGET', ARGV[1] .. id, 'k', 'c')
  if f[1] == token and redis.call('ZSCORE', KEYS[1], id) then
    redis.call('ZADD', KEYS[1], deadline, id)
    if f[2] == '1' then table.insert(cancel, id) end
  else
    table.insert(lost, id)
  end
end
return {lost, cancel}
