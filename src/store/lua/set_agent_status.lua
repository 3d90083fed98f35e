-- set_agent_status: what the agent says about themselves; a call in progress is untouched.
-- KEYS: 1 agents.
-- ARGV: 1 agent id, 2 status, 3 now (ms).
-- Returns the agent JSON.
local id, status, now = ARGV[1], ARGV[2], tonumber(ARGV[3])
local agent = known_agent(KEYS[1], id)
if agent.status ~= status then
  -- Idle time starts when the agent becomes available (or when their wrap-up ends).
  if status == 'available' and agent.idle_since_ms < now then
    agent.idle_since_ms = now
  end
  agent.status = status
  agent.status_changed_ms = now
  save_agent(KEYS[1], id, agent)
end
return cjson.encode(agent)
