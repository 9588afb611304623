-- Erase jobs whose payload names someone who asked to be forgotten (right to erasure).
-- KEYS: 1 pending (unused: see below), 2 scheduled, 3 running, 4 jobs, 5 attempts, 6 errors, 7 done, 8 dead, 9 leases.
-- ARGV: 1 redacted payload, then the ids.
-- A job that is waiting, finished or dead is forgotten whole; a running job keeps running (its
-- worker holds its arguments) but its stored payload becomes the redacted one, so what stays
-- after it (done, retry, dead) names nobody. Unknown ids are skipped. Returns the jobs touched.
-- The cost grows with the ids, not the queue: an id in `pending` is left there without its
-- payload, and the fetch that reaches it drops it (as it drops any id without a payload).
local n = 0
for i = 2, #ARGV do
  local id = ARGV[i]
  local v = redis.call('HGET', KEYS[4], id)
  if v then
    n = n + 1
    if redis.call('ZSCORE', KEYS[3], id) then
      local h = string.match(v, '^%d+|')
      redis.call('HSET', KEYS[4], id, (h or '') .. ARGV[1])
    else
      redis.call('ZREM', KEYS[2], id)
      redis.call('ZREM', KEYS[7], id)
      redis.call('ZREM', KEYS[8], id)
      redis.call('HDEL', KEYS[4], id)
      redis.call('HDEL', KEYS[5], id)
      redis.call('HDEL', KEYS[6], id)
      redis.call('HDEL', KEYS[9], id)
    end
  end
end
return n
