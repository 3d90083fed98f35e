-- call_finished: the agent's call ended; wrap-up until ARGV[3], idle from then on. A call still
-- reserved (its answer never reported) counts as answered.
-- KEYS: 1 agents, 2 calls, 3 reserved calls.
-- ARGV: 1 agent id, 2 call id, 3 wrap-up until (ms), 4 UTC day of now.
local id, sid = ARGV[1], ARGV[2]
local agent = known_agent(KEYS[1], id)
local unreported = is_reserved_for(agent, sid)
if not unreported and not (agent.state == 'on_call' and agent.call_sid == sid) then
  return 0
end
if unreported then
  count_answered(agent, tonumber(ARGV[4]))
  redis.call('HDEL', KEYS[2], sid)
  redis.call('HDEL', KEYS[3], sid)
end
local until_ms = tonumber(ARGV[3])
agent.state = 'wrap_up'
agent.call_sid = ''
agent.since_ms = 0
agent.until_ms = until_ms
agent.idle_since_ms = until_ms
save_agent(KEYS[1], id, agent)
return 1
