-- reserve: match the head of a queue with one free candidate, atomically.
-- KEYS: 1 waiting set, 2 calls, 3 reserved calls, 4 agents, 5 last agent served per queue.
-- ARGV: 1 queue, 2 node, 3 strategy, 4 now (ms), 5 UTC day of now,
--       6.. candidate ids, sorted bytewise and distinct (the tie-break order).
-- Returns {call JSON, agent id}, or nil when nothing was reserved.
local queue, node, strategy = ARGV[1], ARGV[2], ARGV[3]
local now, day = tonumber(ARGV[4]), tonumber(ARGV[5])

local head = redis.call('ZRANGEBYLEX', KEYS[1], queue_min(queue), queue_max(queue), 'LIMIT', 0, 1)[1]
if not head then
  return false
end
local sid = sid_of(queue, head)
local call, call_json = load_call(KEYS[2], sid)
if not call then
  corrupt(KEYS[1], 'waiting call `' .. sid .. '` has no record')
end
-- Each node dispatches its own calls; the head is never skipped for a later call.
if call.node ~= node then
  return false
end
if #ARGV < 6 then
  return false
end

-- Bytewise a > b, independent of the server's locale.
local function after(a, b)
  for i = 1, math.min(#a, #b) do
    local x, y = string.byte(a, i), string.byte(b, i)
    if x ~= y then
      return x > y
    end
  end
  return #a > #b
end

local function calls_on(agent)
  if agent.calls_day == day then
    return agent.calls_today
  end
  return 0
end

local last = redis.call('HGET', KEYS[5], queue)
local records = redis.call('HMGET', KEYS[4], unpack(ARGV, 6))
local chosen, chosen_id, first, first_id
for i = 1, #records do
  local id, json = ARGV[5 + i], records[i]
  local agent = json and parse_agent(KEYS[4], id, json)
  local free = agent and agent.status == 'available'
    and (agent.state == 'idle' or (agent.state == 'wrap_up' and agent.until_ms <= now))
  if free then
    if not first then
      first, first_id = agent, id
    end
    if strategy == 'longest_idle' then
      if not chosen or agent.idle_since_ms < chosen.idle_since_ms then
        chosen, chosen_id = agent, id
      end
    elseif strategy == 'fewest_calls' then
      if not chosen or calls_on(agent) < calls_on(chosen)
          or (calls_on(agent) == calls_on(chosen) and agent.idle_since_ms < chosen.idle_since_ms) then
        chosen, chosen_id = agent, id
      end
    elseif strategy == 'round_robin' then
      if not chosen and last and after(id, last) then
        chosen, chosen_id = agent, id
      end
    else
      corrupt(KEYS[5], 'unknown strategy `' .. strategy .. '`')
    end
  end
end
if strategy == 'round_robin' and not chosen then
  chosen, chosen_id = first, first_id
end
if not chosen then
  return false
end

chosen.state = 'reserved'
chosen.call_sid = sid
chosen.since_ms = now
save_agent(KEYS[4], chosen_id, chosen)
redis.call('ZREM', KEYS[1], head)
redis.call('HSET', KEYS[3], sid, chosen_id)
redis.call('HSET', KEYS[5], queue, chosen_id)
return { call_json, chosen_id }
