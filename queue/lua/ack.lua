-- Record outcomes. Each is fenced by (still running, same lease token): a stale or repeated ack
-- changes nothing. The token is the one fetch.lua gave the lease; tokens never repeat.
-- KEYS: 1 pending, 2 scheduled, 3 running, 4 jobs, 5 attempts, 6 errors, 7 done, 8 dead, 9 leases.
-- ARGV: 1 done retention ms (0 = forget at once), 2 count, then 5 per outcome:
--   id, token, kind (d = done, r = retry, x = dead, b = hand back unstarted, s = snooze),
--   delay ms (retry, snooze), error.
-- A hand-back and a snooze give the attempt back (attempts - 1): neither counts as an attempt.
-- A snooze reschedules the job at TIME + delay and writes no error.
-- Returns {applied, stale}.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
-- As text once (a Lua number passed to redis.call is formatted as a float every time).
local now_s = string.format('%d', now)
local keep_done = tonumber(ARGV[1]) > 0
local n = tonumber(ARGV[2])
local ids = {}
for i = 0, n - 1 do ids[#ids + 1] = ARGV[3 + i * 5] end
local leased = redis.call('ZMSCORE', KEYS[3], unpack(ids))
local tokens = redis.call('HMGET', KEYS[9], unpack(ids))
local done, zrem, forget = {}, {}, {}
local stale = 0
local seen = {}
for i = 0, n - 1 do
  local b = 3 + i * 5
  local id, token, kind = ARGV[b], ARGV[b + 1], ARGV[b + 2]
  if leased[i + 1] and tokens[i + 1] == token and not seen[id] then
    seen[id] = true
    zrem[#zrem + 1] = id
    if kind == 'd' then
      if keep_done then
        done[#done + 1] = now_s
        done[#done + 1] = id
      else
        forget[#forget + 1] = id
      end
    elseif kind == 'r' or kind == 's' then
      local at = now + tonumber(ARGV[b + 3])
      local v = redis.call('HGET', KEYS[4], id)
      if v then
        -- Keep the payload whole; a value without the '<ms>|' header is all payload.
        local h = string.match(v, '^%d+|')
        redis.call('HSET', KEYS[4], id, string.format('%d|', at) .. (h and string.sub(v, #h + 1) or v))
      end
      if kind == 'r' then
        redis.call('HSET', KEYS[6], id, ARGV[b + 4])
      else
        redis.call('HINCRBY', KEYS[5], id, -1)
      end
      redis.call('ZADD', KEYS[2], at, id)
    elseif kind == 'x' then
      redis.call('HSET', KEYS[6], id, ARGV[b + 4])
      redis.call('ZADD', KEYS[8], now, id)
    else
      redis.call('HINCRBY', KEYS[5], id, -1)
      redis.call('LPUSH', KEYS[1], id)
    end
  else
    stale = stale + 1
  end
end
if #zrem > 0 then redis.call('ZREM', KEYS[3], unpack(zrem)) end
if #done > 0 then redis.call('ZADD', KEYS[7], unpack(done)) end
if #forget > 0 then
  redis.call('HDEL', KEYS[4], unpack(forget))
  redis.call('HDEL', KEYS[5], unpack(forget))
  redis.call('HDEL', KEYS[6], unpack(forget))
  redis.call('HDEL', KEYS[9], unpack(forget))
end
return {#zrem, stale}
