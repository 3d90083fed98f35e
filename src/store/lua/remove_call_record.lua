-- remove_call_record: forget a call's record if it still has the version the remover read.
-- KEYS: 1 call records, 2 record deadlines.
-- ARGV: 1 call id, 2 expected version.
-- Returns 1 if removed, 0 if not.
local sid = ARGV[1]
local stored = redis.call('HGET', KEYS[1], sid)
if not stored then
  return 0
end
local record = decode(KEYS[1], sid, stored)
if record.version ~= tonumber(ARGV[2]) then
  return 0
end
redis.call('HDEL', KEYS[1], sid)
redis.call('ZREM', KEYS[2], sid)
return 1
