-- Exact counts for one queue. KEYS: 1 pending, 2 scheduled, 3 running, 4 jobs, 5 done, 6 dead,
-- 7 paused. Returns {queued, scheduled, running, done, dead, oldest waiting ms (-1 when none
-- waits), paused (1/0)}.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local pending = redis.call('LLEN', KEYS[1])
local due = redis.call('ZCOUNT', KEYS[2], '-inf', now)
local later = redis.call('ZCARD', KEYS[2]) - due
local oldest = -1
local head = redis.call('LINDEX', KEYS[1], 0)
if head then
  local v = redis.call('HGET', KEYS[4], head)
  if v then
    local since = tonumber(string.match(v, '^(%d+)|'))
    if since then oldest = math.max(0, now - since) end
  end
end
if due > 0 then
  local first = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
  oldest = math.max(oldest, now - tonumber(first[2]))
end
return {pending + due, later, redis.call('ZCARD', KEYS[3]), redis.call('ZCARD', KEYS[5]),
        redis.call('ZCARD', KEYS[6]), oldest, redis.call('EXISTS', KEYS[7])}
