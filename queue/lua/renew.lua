-- Extend the leases a live worker still holds. KEYS: 1 running, 2 leases, 3 revoked.
-- ARGV: 1 lease ms, then id, token pairs.
-- Returns {how many leases were extended, then the ids among them that were revoked}: a lease
-- already reaped, or given to another worker since, has another token and is not taken back; a
-- revoked job's worker learns here that it should stop it, if the revoke's message was missed.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local deadline = string.format('%d', now + tonumber(ARGV[1]))
local ids = {}
for i = 2, #ARGV, 2 do ids[#ids + 1] = ARGV[i] end
if #ids == 0 then return {0} end
local tokens = redis.call('HMGET', KEYS[2], unpack(ids))
local zargs = {}
for i, id in ipairs(ids) do
  if tokens[i] == ARGV[i * 2 + 1] then
    zargs[#zargs + 1] = deadline
    zargs[#zargs + 1] = id
  end
end
local out = {0}
if #zargs > 0 then
  -- Counted as the leases still running, not by ZADD's CH: a lease renewed in the millisecond
  -- it was taken (or last renewed) keeps its deadline, and CH would not count it.
  local held = {}
  for j = 2, #zargs, 2 do held[#held + 1] = zargs[j] end
  for _, score in ipairs(redis.call('ZMSCORE', KEYS[1], unpack(held))) do
    if score then out[1] = out[1] + 1 end
  end
  redis.call('ZADD', KEYS[1], 'XX', unpack(zargs))
end
if redis.call('EXISTS', KEYS[3]) == 1 then
  local revoked = redis.call('ZMSCORE', KEYS[3], unpack(ids))
  for i, id in ipairs(ids) do
    if revoked[i] then out[#out + 1] = id end
  end
end
return out
