-- offer_missed: the agent did not take the call. The agent is idle again (or on break after
-- too many misses in a row) and the call goes back to its original place in its queue.
-- KEYS: 1 waiting set, 2 calls, 3 reserved calls, 4 agents.
-- ARGV: 1 agent id, 2 call id, 3 misses in a row that mean a break (0: never), 4 now (ms).
-- Returns 'break' or 'idle'.
local id, sid = ARGV[1], ARGV[2]
local max_missed, now = tonumber(ARGV[3]), tonumber(ARGV[4])
local agent = known_agent(KEYS[4], id)
if not is_reserved_for(agent, sid) then
  return 'idle'
end
agent.state = 'idle'
agent.call_sid = ''
agent.since_ms = 0
agent.idle_since_ms = now
agent.missed_in_a_row = agent.missed_in_a_row + 1
local outcome = 'idle'
if max_missed > 0 and agent.missed_in_a_row >= max_missed then
  agent.missed_in_a_row = 0
  if agent.status ~= 'break' then
    agent.status = 'break'
    agent.status_changed_ms = now
  end
  outcome = 'break'
end
save_agent(KEYS[4], id, agent)

if redis.call('HGET', KEYS[3], sid) == id then
  redis.call('HDEL', KEYS[3], sid)
  local call = load_call(KEYS[2], sid)
  if call then
    redis.call('ZADD', KEYS[1], 0, call.rank)
  end
end
return outcome
