-- record_stats: add to the counters of the buckets (a day, an hour, a quarter hour) an event
-- falls in.
-- KEYS: the buckets' hashes (all under the {P:stats} hash tag).
-- ARGV: one TTL (ms) per key, in KEYS order, then (field, increment) pairs.
-- Each key lives its TTL after its last change; increments only ever reach the current buckets.
local keys = #KEYS
for i = keys + 1, #ARGV, 2 do
  for k = 1, keys do
    redis.call('HINCRBY', KEYS[k], ARGV[i], ARGV[i + 1])
  end
end
for k = 1, keys do
  redis.call('PEXPIRE', KEYS[k], ARGV[k])
end
return 1
