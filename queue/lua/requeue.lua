-- Put a dead job back in line with fresh attempts. KEYS: 1 pending, 2 jobs, 3 attempts, 4 dead. ARGV: 1 id, 2 notify channel.
-- Returns 1 when requeued, 0 when the id is not dead. The job's lease token (leases) is left alone:
-- the next lease gets a new one, so a worker still holding an old lease stays fenced out.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local id = ARGV[1]
if redis.call('ZREM', KEYS[4], id) == 0 then return 0 end
local v = redis.call('HGET', KEYS[2], id)
if not v then return 0 end
-- Keep the payload whole; a value without the '<ms>|' header is all payload.
local h = string.match(v, '^%d+|')
redis.call('HSET', KEYS[2], id, string.format('%d|', now) .. (h and string.sub(v, #h + 1) or v))
redis.call('HDEL', KEYS[3], id)
redis.call('RPUSH', KEYS[1], id)
if ARGV[2] ~= '' then redis.call('PUBLISH', ARGV[2], '1') end
return 1
