-- Put dead jobs back in line with fresh attempts. KEYS: 1 pending, 2 jobs, 3 attempts, 4 dead,
-- 5 revoked (a requeued job is no longer revoked).
-- ARGV: 1 notify channel, 2.. ids. Returns how many were requeued (an id that is not dead, or
-- whose payload is gone, is skipped). A job's lease token (leases) is left alone: the next lease
-- gets a new one, so a worker still holding an old lease stays fenced out.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local n = 0
for i = 2, #ARGV do
  local id = ARGV[i]
  if redis.call('ZREM', KEYS[4], id) == 1 then
    local v = redis.call('HGET', KEYS[2], id)
    if v then
      -- Keep the payload whole; a value without the '<ms>|' header is all payload.
      local h = string.match(v, '^%d+|')
      redis.call('HSET', KEYS[2], id, string.format('%d|', now) .. (h and string.sub(v, #h + 1) or v))
      redis.call('HDEL', KEYS[3], id)
      redis.call('ZREM', KEYS[5], id)
      redis.call('RPUSH', KEYS[1], id)
      n = n + 1
    end
  end
end
if n > 0 and ARGV[1] ~= '' then redis.call('PUBLISH', ARGV[1], '1') end
return n
