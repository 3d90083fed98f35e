-- put_call_record: write a call's record if the stored one still has the version the writer
-- read (0: none yet), and index its safety deadline.
-- KEYS: 1 call records, 2 record deadlines.
-- ARGV: 1 call id, 2 expected version, 3 record JSON (already carrying the new version),
--       4 deadline (ms).
-- Returns the new version, or -1 when someone else wrote first.
local sid = ARGV[1]
local expected = tonumber(ARGV[2])
local stored = redis.call('HGET', KEYS[1], sid)
local version = 0
if stored then
  local record = decode(KEYS[1], sid, stored)
  if type(record.version) ~= 'number' then
    corrupt(KEYS[1], 'record `' .. sid .. '` has no version')
  end
  version = record.version
end
if version ~= expected then
  return -1
end
redis.call('HSET', KEYS[1], sid, ARGV[3])
redis.call('ZADD', KEYS[2], tonumber(ARGV[4]), sid)
return expected + 1
