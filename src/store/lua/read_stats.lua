-- read_stats: the counters of many buckets in one round trip.
-- KEYS: the buckets' hashes (all under the {P:stats} hash tag). ARGV: the field names.
-- Returns, per key, the fields' values in ARGV order (nil where nothing was counted).
local result = {}
for i, key in ipairs(KEYS) do
  result[i] = redis.call('HMGET', key, unpack(ARGV))
end
return result
