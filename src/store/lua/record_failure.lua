-- record_failure: one failed verification against a claimed record, in a sliding window.
-- KEYS: 1 the record's failures (sorted set: score = time in ms).
-- ARGV: 1 now (ms), 2 window (ms), 3 a unique member for this failure.
-- Returns the failures less than a window old, this one included.
local now, window = tonumber(ARGV[1]), tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
redis.call('ZADD', KEYS[1], now, ARGV[3])
-- The newest failure leaves the window last: then the whole record can go.
redis.call('PEXPIRE', KEYS[1], math.max(window, 1))
return redis.call('ZCARD', KEYS[1])
