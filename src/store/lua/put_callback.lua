-- put_callback: write a callback request if the stored one still has the version the writer
-- read. Requests kept before versions existed count as version 0.
-- KEYS: 1 callbacks.
-- ARGV: 1 callback id, 2 expected version, 3 request JSON (already carrying the new version).
-- Returns the new version, or -1 when someone else wrote first (or there is no such request).
local id = ARGV[1]
local expected = tonumber(ARGV[2])
local stored = redis.call('HGET', KEYS[1], id)
if not stored then
  return -1
end
local request = decode(KEYS[1], id, stored)
local version = request.version
if version == nil then
  version = 0
elseif type(version) ~= 'number' then
  corrupt(KEYS[1], 'callback `' .. id .. '` has no version')
end
if version ~= expected then
  return -1
end
redis.call('HSET', KEYS[1], id, ARGV[3])
return expected + 1
