-- complete_callback: an agent returned the call. The first completion time is kept; a failed
-- request (the patient could not be reached) may be completed too. Every call bumps the
-- request's version, so a dialer's compare-and-set that read it before sees the change.
-- KEYS: 1 callbacks.
-- ARGV: 1 callback id, 2 now (ms).
-- Returns 1 if the request exists, 0 if not.
local id = ARGV[1]
local json = redis.call('HGET', KEYS[1], id)
if not json then
  return 0
end
local request = decode(KEYS[1], id, json)
if request.status == 'pending' or request.status == 'failed' then
  request.status = 'done'
  request.completed_at_ms = tonumber(ARGV[2])
  request.claimed_by = ''
  request.claimed_until_ms = 0
elseif request.status ~= 'done' then
  corrupt(KEYS[1], 'callback `' .. id .. '` has no status pending, done or failed')
end
local version = request.version
if type(version) ~= 'number' then
  version = 0
end
request.version = version + 1
redis.call('HSET', KEYS[1], id, cjson.encode(request))
return 1
