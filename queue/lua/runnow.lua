-- Run waiting jobs now: move them from the scheduled ZSET (delayed, or waiting for a retry) to
-- the front of the line, in the order given (the first id runs first). KEYS: 1 pending,
-- 2 scheduled, 3 jobs. ARGV: 1 notify channel, 2.. ids. Returns the ids moved (an id that is not
-- scheduled, or whose payload is gone, is skipped). Attempts are kept: a retrying job run now is
-- the same attempt it was waiting for. Its waiting-since time becomes now (it was its due time),
-- so the oldest-waiting gauge counts from the moment it joined the line.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local moved = {}
for i = #ARGV, 2, -1 do
  local id = ARGV[i]
  if redis.call('ZREM', KEYS[2], id) == 1 then
    local v = redis.call('HGET', KEYS[3], id)
    if v then
      local h = string.match(v, '^%d+|')
      redis.call('HSET', KEYS[3], id, string.format('%d|', now) .. (h and string.sub(v, #h + 1) or v))
      redis.call('LPUSH', KEYS[1], id)
      table.insert(moved, 1, id)
    end
  end
end
if #moved > 0 and ARGV[1] ~= '' then redis.call('PUBLISH', ARGV[1], '1') end
return moved
