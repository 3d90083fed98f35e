-- remove_call: a hang-up. The call leaves every queue; an agent reserved for it is idle again,
-- with the idle time they had before the offer.
-- KEYS: 1 waiting set, 2 calls, 3 reserved calls, 4 agents.
-- ARGV: 1 call id, 2 (optional) node: remove only a call that belongs to this node.
-- Returns the call JSON, or nil when the call was not known (or belongs to another node).
local sid = ARGV[1]
local call, json = load_call(KEYS[2], sid)
if not call then
  return false
end
if ARGV[2] and ARGV[2] ~= '' and call.node ~= ARGV[2] then
  return false
end
redis.call('ZREM', KEYS[1], call.rank)
local agent_id = redis.call('HGET', KEYS[3], sid)
if agent_id then
  redis.call('HDEL', KEYS[3], sid)
  local agent = load_agent(KEYS[4], agent_id)
  if agent and is_reserved_for(agent, sid) then
    agent.state = 'idle'
    agent.call_sid = ''
    agent.since_ms = 0
    save_agent(KEYS[4], agent_id, agent)
  end
end
redis.call('HDEL', KEYS[2], sid)
return json
