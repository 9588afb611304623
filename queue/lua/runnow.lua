-- Run waiting jobs now: move them from the scheduled ZSET (delayed, or waiting for a retry) to
-- the front of the line. KEYS: 1 pending, 2 scheduled, 3 jobs. ARGV: 1 notify channel, 2.. ids.
-- Returns how many moved (an id that is not scheduled, or whose payload is gone, is skipped).
-- Attempts are kept: a retrying job run now is the same attempt it was waiting for.
local n = 0
for i = 2, #ARGV do
  local id = ARGV[i]
  if redis.call('ZREM', KEYS[2], id) == 1 then
    if redis.call('HEXISTS', KEYS[3], id) == 1 then
      redis.call('LPUSH', KEYS[1], id)
      n = n + 1
    end
  end
end
if n > 0 and ARGV[1] ~= '' then redis.call('PUBLISH', ARGV[1], '1') end
return n
