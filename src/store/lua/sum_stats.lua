-- sum_stats: the counters of many buckets added up, in one round trip and one small answer.
-- KEYS: the buckets' hashes (all under the {P:stats} hash tag). ARGV: the field names.
-- Returns one total per field, in ARGV order. Counts stay far below 2^53, where Lua's numbers
-- are exact integers.
local totals = {}
for i = 1, #ARGV do
  totals[i] = 0
end
for _, key in ipairs(KEYS) do
  local values = redis.call('HMGET', key, unpack(ARGV))
  for i = 1, #ARGV do
    if values[i] then
      local n = tonumber(values[i])
      if not n or n < 0 or n ~= math.floor(n) then
        return redis.error_reply('CORRUPT ' .. key .. ' ' .. ARGV[i] .. ' is not a count')
      end
      totals[i] = totals[i] + n
    end
  end
end
return totals
