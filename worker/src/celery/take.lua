-- Take up to ARGV[1] messages from Celery's lists on a broker that is not the fleet's Redis (in
-- priority order, each popped from the right) into the staging list there, atomically, and return
-- them. The worker then adopts them into the intake queue on the fleet's Redis and only then
-- drops them from staging: a message is always in a Celery list, in staging, or in the queue.
-- KEYS: 1 staging list, 2.. Celery's lists in priority order.
-- ARGV: 1 max messages.
local left = tonumber(ARGV[1])
local out = {}
for k = 2, #KEYS do
  if left <= 0 then break end
  local msgs = redis.call('RPOP', KEYS[k], left)
  if msgs then
    redis.call('LPUSH', KEYS[1], unpack(msgs))
    for _, m in ipairs(msgs) do out[#out + 1] = m end
    left = left - #msgs
  end
end
return out
