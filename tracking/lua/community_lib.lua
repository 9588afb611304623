-- Shared prelude: one visit to a community page: the seed's visitor hash and sets, plus sorted
-- sets of last-seen times so stats count each visitor on its own 5-minute clock.
-- C: visitors (community:{id}:visitors HASH), authenticated, anonymous (SETs), seen (ZSET,
--   everyone), seen_authenticated (ZSET, signed-in visitors, so stats count them with ZCOUNT),
--   footprint (the visitor's erasure footprint SET; nil on a Redis Cluster, where the visitor's
--   own step records the visit before it happens), footprint_ttl (s: a day past the analytics
--   keys it also lists, the same rule as count.lua's callers).
-- visitor: visitor key; doc: visitor JSON object without pages_viewed (the API's own, never
-- empty: the count is spliced in as text); now: ms; window: s;
-- authenticated: true or false. Returns the visitor's pages_viewed.
local function community_visit(C, visitor, doc, now, window, authenticated)
  -- Departed visitors (last seen more than the window ago) leave every structure a reader may
  -- count (HLEN of the hash, SCARD of the sets), not only the stats' sorted sets: each visit to
  -- the community takes out those who left since the last one (each visitor once).
  local cutoff = now - window * 1000
  local gone = redis.call('ZRANGEBYSCORE', C.seen, '-inf', '(' .. cutoff)
  for i = 1, #gone, 500 do
    local part = {}
    for j = i, math.min(i + 499, #gone) do part[#part + 1] = gone[j] end
    redis.call('HDEL', C.visitors, unpack(part))
    redis.call('SREM', C.anonymous, unpack(part))
    redis.call('SREM', C.authenticated, unpack(part))
    redis.call('ZREM', C.seen, unpack(part))
    redis.call('ZREM', C.seen_authenticated, unpack(part))
  end
  local prev = redis.call('HGET', C.visitors, visitor)
  local pages = 0
  if prev then
    local ok, d = pcall(cjson.decode, prev)
    if ok and type(d) == 'table' then pages = tonumber(d.pages_viewed) or 0 end
  end
  pages = pages + 1
  redis.call('HSET', C.visitors, visitor, string.sub(doc, 1, -2) .. ',"pages_viewed":' .. pages .. '}')
  -- A visitor key names its kind (anon_… or user_…), so it is only ever in one of the two sets.
  local kind_set = authenticated and C.authenticated or C.anonymous
  redis.call('SADD', kind_set, visitor)
  local ttl = tostring(window)
  redis.call('ZADD', C.seen, now, visitor)
  if authenticated then
    redis.call('ZADD', C.seen_authenticated, now, visitor)
    redis.call('EXPIRE', C.seen_authenticated, ttl)
  end
  -- Each kind's set lives 5 minutes past its kind's last visit.
  redis.call('EXPIRE', C.visitors, ttl)
  redis.call('EXPIRE', kind_set, ttl)
  redis.call('EXPIRE', C.seen, ttl)
  if not prev and C.footprint then
    redis.call('SADD', C.footprint, C.visitors)
    redis.call('EXPIRE', C.footprint, C.footprint_ttl)
  end
  return pages
end
