-- careline: helpers every routing script starts with (prepended by src/store/redis.rs).
-- Records are JSON values in hashes; anything careline did not write is reported, never guessed.

local function corrupt(key, detail)
  error({ err = 'CORRUPT ' .. key .. ' ' .. detail })
end

local function decode(key, field, json)
  local ok, value = pcall(cjson.decode, json)
  if not ok or type(value) ~= 'table' then
    corrupt(key, 'field `' .. field .. '` is not a careline record')
  end
  return value
end

local AGENT_NUMBERS = { 'idle_since_ms', 'status_changed_ms', 'calls_today', 'calls_day',
  'missed_in_a_row', 'since_ms', 'until_ms' }

local function parse_agent(agents_key, id, json)
  local agent = decode(agents_key, id, json)
  for _, name in ipairs(AGENT_NUMBERS) do
    if type(agent[name]) ~= 'number' then
      corrupt(agents_key, 'agent `' .. id .. '` has no number `' .. name .. '`')
    end
  end
  if type(agent.status) ~= 'string' or type(agent.state) ~= 'string'
      or type(agent.call_sid) ~= 'string' then
    corrupt(agents_key, 'agent `' .. id .. '` has no status, state or call')
  end
  return agent
end

local function load_agent(agents_key, id)
  local json = redis.call('HGET', agents_key, id)
  if not json then
    return nil
  end
  return parse_agent(agents_key, id, json)
end

local function known_agent(agents_key, id)
  local agent = load_agent(agents_key, id)
  if not agent then
    error({ err = 'UNKNOWN_AGENT ' .. id })
  end
  return agent
end

local function save_agent(agents_key, id, agent)
  redis.call('HSET', agents_key, id, cjson.encode(agent))
end

local function load_call(calls_key, sid)
  local json = redis.call('HGET', calls_key, sid)
  if not json then
    return nil, nil
  end
  local call = decode(calls_key, sid, json)
  if type(call.rank) ~= 'string' or type(call.node) ~= 'string'
      or type(call.queue) ~= 'string' then
    corrupt(calls_key, 'call `' .. sid .. '` has no rank, node or queue')
  end
  return call, json
end

local function is_reserved_for(agent, sid)
  return agent.state == 'reserved' and agent.call_sid == sid
end

-- An answered offer: one more call on `day`, misses forgotten.
local function count_answered(agent, day)
  if agent.calls_day == day then
    agent.calls_today = agent.calls_today + 1
  else
    agent.calls_today = 1
    agent.calls_day = day
  end
  agent.missed_in_a_row = 0
end

-- The bounds of one queue's calls in the waiting set: members are queue .. '\0' .. rank.
local function queue_min(queue)
  return '[' .. queue .. '\0'
end

local function queue_max(queue)
  return '(' .. queue .. '\1'
end

-- Member = queue, NUL, 8 hex digits of priority rank, 16 of time rank, then the call id.
local function sid_of(queue, member)
  return string.sub(member, #queue + 2 + 24)
end

