-- waiting: one queue's waiting calls in service order.
-- KEYS: 1 waiting set, 2 calls.
-- ARGV: 1 queue.
-- Returns the calls' JSON.
local queue = ARGV[1]
local members = redis.call('ZRANGEBYLEX', KEYS[1], queue_min(queue), queue_max(queue))
local calls = {}
for i, member in ipairs(members) do
  local sid = sid_of(queue, member)
  local json = redis.call('HGET', KEYS[2], sid)
  if not json then
    corrupt(KEYS[1], 'waiting call `' .. sid .. '` has no record')
  end
  calls[i] = json
end
return calls
