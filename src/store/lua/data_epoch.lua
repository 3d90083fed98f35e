-- data_epoch: the id of the data set; a Redis that restarted empty gets a new one.
-- KEYS: 1 epoch.
-- ARGV: 1 a fresh random id, used only when there is none.
local epoch = redis.call('GET', KEYS[1])
if epoch then
  return epoch
end
redis.call('SET', KEYS[1], ARGV[1])
return ARGV[1]
