-- Forget dead jobs. KEYS: 1 jobs, 2 attempts, 3 errors, 4 dead, 5 leases. ARGV: ids.
-- Returns how many were discarded (an id that is not dead is skipped).
local n = 0
for _, id in ipairs(ARGV) do
  if redis.call('ZREM', KEYS[4], id) == 1 then
    redis.call('HDEL', KEYS[1], id)
    redis.call('HDEL', KEYS[2], id)
    redis.call('HDEL', KEYS[3], id)
    redis.call('HDEL', KEYS[5], id)
    n = n + 1
  end
end
return n
