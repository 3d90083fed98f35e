-- record_stats: add to the counters of one day bucket and one 15-minute bucket.
-- KEYS: 1 the day's hash, 2 the interval's hash (both under the {P:stats} hash tag).
-- ARGV: 1 the day's TTL (ms), 2 the interval's TTL (ms), then (field, increment) pairs.
-- Each key lives a TTL after its last change; increments only ever reach the current buckets.
for i = 3, #ARGV, 2 do
  redis.call('HINCRBY', KEYS[1], ARGV[i], ARGV[i + 1])
  redis.call('HINCRBY', KEYS[2], ARGV[i], ARGV[i + 1])
end
redis.call('PEXPIRE', KEYS[1], ARGV[1])
redis.call('PEXPIRE', KEYS[2], ARGV[2])
return 1
