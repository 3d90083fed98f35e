-- check_reset_code: redeem a one-time code. Single use; void after its last wrong check.
-- KEYS: 1 the patient's code.
-- ARGV: 1 code hash offered, 2 now (ms).
-- Returns {'valid'}, {'wrong', checks left} or {'none'}.
local fields = redis.call('HMGET', KEYS[1], 'hash', 'checks_left', 'expires_at_ms')
if not fields[1] then
  return { 'none' }
end
local checks_left, expires_at = tonumber(fields[2]), tonumber(fields[3])
if not checks_left or not expires_at then
  error({ err = 'CORRUPT ' .. KEYS[1] .. ' reset code without checks or expiry' })
end
if tonumber(ARGV[2]) >= expires_at or checks_left <= 0 then
  redis.call('DEL', KEYS[1])
  return { 'none' }
end
if fields[1] == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return { 'valid' }
end
checks_left = checks_left - 1
if checks_left <= 0 then
  redis.call('DEL', KEYS[1])
else
  redis.call('HSET', KEYS[1], 'checks_left', checks_left)
end
return { 'wrong', checks_left }
