-- restore_offer: after the store lost data (a failover promoted a replica that missed the last
-- writes, or Redis restarted), a node puts back an offer or a call in progress it handed out:
-- the agent holds the call again, so nobody else is offered to them meanwhile. An agent who
-- now holds another call is left as they are (returns 0).
-- KEYS: 1 waiting set, 2 calls, 3 reserved calls, 4 agents.
-- ARGV: 1 agent id, 2 call id, 3 'reserved' or 'on_call', 4 since (ms), 5 call JSON.
-- Returns 1 when the agent holds the call (again, or still).
local id, sid, held, since = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
local agent = known_agent(KEYS[4], id)
local busy = agent.state == 'reserved' or agent.state == 'on_call'
if busy and agent.call_sid ~= sid then
  return 0
end
if held == 'reserved' and agent.state == 'on_call' then
  -- The store already knows the answer.
  return 1
end
local call = load_call(KEYS[2], sid)
if call then
  redis.call('ZREM', KEYS[1], call.rank)
end
if held == 'on_call' then
  redis.call('HDEL', KEYS[2], sid)
  redis.call('HDEL', KEYS[3], sid)
else
  if not call then
    redis.call('HSET', KEYS[2], sid, ARGV[5])
  end
  redis.call('HSET', KEYS[3], sid, id)
end
if agent.state ~= held then
  agent.state = held
  agent.call_sid = sid
  agent.since_ms = since
  save_agent(KEYS[4], id, agent)
end
return 1
