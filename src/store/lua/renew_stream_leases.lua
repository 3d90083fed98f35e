-- renew_stream_leases: a node still carries these calls' streams; their leases and safety
-- deadlines move on. Records whose stream another node carries now are left alone.
-- KEYS: 1 call records, 2 record deadlines.
-- ARGV: 1 node, 2 lease until (ms), 3 deadline (ms), then call ids.
-- Returns how many were renewed.
local node = ARGV[1]
local lease_until = tonumber(ARGV[2])
local deadline = tonumber(ARGV[3])
local renewed = 0
for i = 4, #ARGV do
  local sid = ARGV[i]
  local stored = redis.call('HGET', KEYS[1], sid)
  if stored then
    local record = decode(KEYS[1], sid, stored)
    if record.stream_node == node and (record.phase == 'menus' or record.phase == 'queued')
        and type(record.version) == 'number' then
      record.lease_until_ms = lease_until
      record.deadline_ms = deadline
      record.version = record.version + 1
      redis.call('HSET', KEYS[1], sid, cjson.encode(record))
      redis.call('ZADD', KEYS[2], deadline, sid)
      renewed = renewed + 1
    end
  end
end
return renewed
