-- Forget a dead job. KEYS: 1 jobs, 2 attempts, 3 errors, 4 dead, 5 leases. ARGV: 1 id.
-- Returns 1 when discarded, 0 when not dead.
if redis.call('ZREM', KEYS[4], ARGV[1]) == 0 then return 0 end
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('HDEL', KEYS[3], ARGV[1])
redis.call('HDEL', KEYS[5], ARGV[1])
return 1
