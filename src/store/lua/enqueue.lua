-- enqueue: add a call to its queue, or (already known) keep its place and take the new node.
-- A call whose record exists but says it waits in no queue is refused: that join came late.
-- KEYS: 1 waiting set, 2 calls, 3 reserved calls, 4 agents, 5 call records.
-- ARGV: 1 call id, 2 call JSON, 3 waiting-set member, 4 node.
-- Returns 'waiting', 'refused', or { agent id, reserved since (ms), call JSON } for a call
-- already reserved.
local sid = ARGV[1]
local record_json = redis.call('HGET', KEYS[5], sid)
if record_json then
  local record = decode(KEYS[5], sid, record_json)
  if record.queued == nil or record.queued == cjson.null then
    return 'refused'
  end
end
local call = load_call(KEYS[2], sid)
if call then
  call.node = ARGV[4]
  local json = cjson.encode(call)
  redis.call('HSET', KEYS[2], sid, json)
  local agent_id = redis.call('HGET', KEYS[3], sid)
  if agent_id then
    local agent = load_agent(KEYS[4], agent_id)
    local since = 0
    if agent and is_reserved_for(agent, sid) then
      since = agent.since_ms
    end
    return { agent_id, tostring(since), json }
  end
  return 'waiting'
end
redis.call('HSET', KEYS[2], sid, ARGV[2])
redis.call('ZADD', KEYS[1], 0, ARGV[3])
return 'waiting'
