-- Remove finished jobs past their retention, a bounded step per call.
-- KEYS: 1 jobs, 2 attempts, 3 errors, 4 done, 5 dead, 6 leases, 7 revoked. ARGV: 1 done retention ms,
-- 2 dead retention ms, 3 limit. The oldest revoke marks (up to the limit) whose job has ended or is
-- gone are removed too: only a job that may still run needs its mark.
-- Returns {done removed, dead removed}.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local out = {}
for i, age in ipairs({ARGV[1], ARGV[2]}) do
  local z = KEYS[3 + i]
  local ids = redis.call('ZRANGEBYSCORE', z, '-inf', now - tonumber(age), 'LIMIT', 0, tonumber(ARGV[3]))
  if #ids > 0 then
    redis.call('HDEL', KEYS[1], unpack(ids))
    redis.call('HDEL', KEYS[2], unpack(ids))
    redis.call('HDEL', KEYS[3], unpack(ids))
    redis.call('HDEL', KEYS[6], unpack(ids))
    redis.call('ZREM', z, unpack(ids))
  end
  out[i] = #ids
end
local marks = redis.call('ZRANGE', KEYS[7], 0, tonumber(ARGV[3]) - 1)
for _, id in ipairs(marks) do
  if redis.call('HEXISTS', KEYS[1], id) == 0 or redis.call('ZSCORE', KEYS[4], id)
      or redis.call('ZSCORE', KEYS[5], id) then
    redis.call('ZREM', KEYS[7], id)
  end
end
return out
