-- offer_answered: the agent took the reserved call; the call leaves the store.
-- KEYS: 1 agents, 2 calls, 3 reserved calls.
-- ARGV: 1 agent id, 2 call id, 3 now (ms), 4 UTC day of now.
local id, sid = ARGV[1], ARGV[2]
local agent = known_agent(KEYS[1], id)
if not is_reserved_for(agent, sid) then
  return 0
end
count_answered(agent, tonumber(ARGV[4]))
agent.state = 'on_call'
agent.since_ms = tonumber(ARGV[3])
save_agent(KEYS[1], id, agent)
redis.call('HDEL', KEYS[2], sid)
redis.call('HDEL', KEYS[3], sid)
return 1
