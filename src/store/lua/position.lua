-- position: 1-based place of a waiting call in its queue.
-- KEYS: 1 waiting set, 2 calls, 3 reserved calls.
-- ARGV: 1 queue, 2 call id.
-- Returns the place, or nil when the call is not waiting in that queue.
local queue, sid = ARGV[1], ARGV[2]
if redis.call('HEXISTS', KEYS[3], sid) == 1 then
  return false
end
local call = load_call(KEYS[2], sid)
if not call or call.queue ~= queue then
  return false
end
return redis.call('ZLEXCOUNT', KEYS[1], queue_min(queue), '(' .. call.rank) + 1
