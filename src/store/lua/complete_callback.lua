-- complete_callback: an agent returned the call. The first completion time is kept.
-- KEYS: 1 callbacks.
-- ARGV: 1 callback id, 2 now (ms).
-- Returns 1 if the request exists, 0 if not.
local id = ARGV[1]
local json = redis.call('HGET', KEYS[1], id)
if not json then
  return 0
end
local request = decode(KEYS[1], id, json)
if request.status == 'pending' then
  request.status = 'done'
  request.completed_at_ms = tonumber(ARGV[2])
  redis.call('HSET', KEYS[1], id, cjson.encode(request))
elseif request.status ~= 'done' then
  corrupt(KEYS[1], 'callback `' .. id .. '` has no status pending or done')
end
return 1
