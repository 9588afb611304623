-- Revoke one job: it never starts again. KEYS: 1 pending (unused: see below), 2 scheduled, 3 running, 4 jobs,
-- 5 errors, 6 done, 7 dead, 8 revoked. ARGV: 1 id, 2 notify channel, 3 reason.
-- A scheduled or retrying job goes to dead at once with the reason (an operator may still
-- requeue it). A queued job (in `pending`) gets a mark in `revoked`, which the fetch that pops it
-- finds: it goes to dead then, never leased (no scan of `pending` here, whatever its length).
-- A running job gets the mark too (no fetch leases it again, whatever its run's outcome) and its
-- worker is told on the notify channel (`revoke:<id>`) to stop it.
-- Returns 'revoked', 'running', 'done', 'dead' (nothing changed), or 'unknown'.
local id = ARGV[1]
if redis.call('HEXISTS', KEYS[4], id) == 0 then return 'unknown' end
if redis.call('ZSCORE', KEYS[6], id) then return 'done' end
if redis.call('ZSCORE', KEYS[7], id) then return 'dead' end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if redis.call('ZSCORE', KEYS[3], id) then
  redis.call('ZADD', KEYS[8], now, id)
  redis.call('PUBLISH', ARGV[2], 'revoke:' .. id)
  return 'running'
end
if redis.call('ZREM', KEYS[2], id) == 1 then
  redis.call('ZADD', KEYS[7], now, id)
  redis.call('HSET', KEYS[5], id, ARGV[3])
  return 'revoked'
end
redis.call('ZADD', KEYS[8], now, id)
return 'revoked'
