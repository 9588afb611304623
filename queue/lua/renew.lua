-- Extend the leases a live worker still holds. KEYS: 1 running, 2 attempts. ARGV: 1 lease ms, then id, attempt pairs.
-- Returns how many leases were extended (a lease already reaped is not taken back).
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local deadline = now + tonumber(ARGV[1])
local ids = {}
for i = 2, #ARGV, 2 do ids[#ids + 1] = ARGV[i] end
if #ids == 0 then return 0 end
local attempts = redis.call('HMGET', KEYS[2], unpack(ids))
local zargs = {}
for i, id in ipairs(ids) do
  if attempts[i] == ARGV[i * 2 + 1] then
    zargs[#zargs + 1] = deadline
    zargs[#zargs + 1] = id
  end
end
if #zargs == 0 then return 0 end
return redis.call('ZADD', KEYS[1], 'XX', 'CH', unpack(zargs))
