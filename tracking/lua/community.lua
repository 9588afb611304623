-- One visit to a community page: the seed's visitor hash and sets, plus a sorted set of last-seen
-- times so stats count each visitor on its own 5-minute clock.
-- KEYS: 1 community:{id}:visitors, 2 …:authenticated, 3 …:anonymous, 4 …:seen, 5 visitor footprint,
--   6 …:seen:authenticated (signed-in visitors' last views, so stats can count them with ZCOUNT).
-- ARGV: 1 visitor key, 2 visitor JSON without pages_viewed, 3 now ms, 4 window s, 5 authenticated (1/0).
local prev = redis.call('HGET', KEYS[1], ARGV[1])
local pages = 0
if prev then
  local ok, d = pcall(cjson.decode, prev)
  if ok and type(d) == 'table' then pages = tonumber(d.pages_viewed) or 0 end
end
local v = cjson.decode(ARGV[2])
v.pages_viewed = pages + 1
local window = tonumber(ARGV[4])
local now = tonumber(ARGV[3])
redis.call('HSET', KEYS[1], ARGV[1], cjson.encode(v))
if ARGV[5] == '1' then
  redis.call('SADD', KEYS[2], ARGV[1]); redis.call('SREM', KEYS[3], ARGV[1])
else
  redis.call('SADD', KEYS[3], ARGV[1]); redis.call('SREM', KEYS[2], ARGV[1])
end
redis.call('ZADD', KEYS[4], now, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', now - window * 1000)
if ARGV[5] == '1' then
  redis.call('ZADD', KEYS[6], now, ARGV[1])
  redis.call('ZREMRANGEBYSCORE', KEYS[6], '-inf', now - window * 1000)
  redis.call('EXPIRE', KEYS[6], window)
end
for i = 1, 4 do redis.call('EXPIRE', KEYS[i], window) end
redis.call('SADD', KEYS[5], KEYS[1])
-- The footprint's TTL: a day longer than the analytics keys it also lists (see count.lua).
redis.call('EXPIRE', KEYS[5], 4 * 86400)
return v.pages_viewed
