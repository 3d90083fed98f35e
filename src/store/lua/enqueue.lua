-- enqueue: add a call to its queue, or (already known) keep its place and take the new node.
-- KEYS: 1 waiting set, 2 calls, 3 reserved calls.
-- ARGV: 1 call id, 2 call JSON, 3 waiting-set member, 4 node.
local sid = ARGV[1]
if redis.call('HEXISTS', KEYS[3], sid) == 1 then
  return 0
end
local call = load_call(KEYS[2], sid)
if call then
  call.node = ARGV[4]
  redis.call('HSET', KEYS[2], sid, cjson.encode(call))
  return 0
end
redis.call('HSET', KEYS[2], sid, ARGV[2])
redis.call('ZADD', KEYS[1], 0, ARGV[3])
return 1
