-- put_reset_code: the hash of a one-time code, replacing any earlier one.
-- KEYS: 1 the patient's code (hash: hash, checks_left, expires_at_ms).
-- ARGV: 1 code hash, 2 checks allowed (0: store nothing), 3 expiry (ms since the epoch).
redis.call('DEL', KEYS[1])
local checks = tonumber(ARGV[2])
if checks <= 0 then
  return 0
end
redis.call('HSET', KEYS[1], 'hash', ARGV[1], 'checks_left', checks, 'expires_at_ms', ARGV[3])
-- The stored expiry decides; the TTL only clears the key away. It is at least a minute, so a
-- node whose clock runs ahead of Redis's does not lose a code it still considers live.
local time = redis.call('TIME')
local redis_now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
redis.call('PEXPIRE', KEYS[1], math.max(tonumber(ARGV[3]) - redis_now, 60000))
return 1
