-- register_agents: create the agents that do not exist yet; existing ones are untouched.
-- KEYS: 1 agents.
-- ARGV: pairs of agent id, new agent JSON.
for i = 1, #ARGV, 2 do
  redis.call('HSETNX', KEYS[1], ARGV[i], ARGV[i + 1])
end
return 0
