-- data_epoch: the id of the data set, and of the server holding it. A Redis that restarted
-- (empty, or from a snapshot older than its last writes) or a replica promoted by a failover
-- (which may lack the master's last writes) is another server, with another run_id, so every
-- node sees the epoch change and puts back what it knows.
-- KEYS: 1 epoch.
-- ARGV: 1 a fresh random id, used only when there is none.
local epoch = redis.call('GET', KEYS[1])
if not epoch then
  epoch = ARGV[1]
  redis.call('SET', KEYS[1], epoch)
end
local run_id = string.match(redis.call('INFO', 'server'), 'run_id:(%x+)') or ''
return epoch .. '@' .. run_id
