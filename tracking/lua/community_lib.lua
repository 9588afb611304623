-- Shared prelude: one visit to a community page: the seed's visitor hash and sets, plus sorted
-- sets of last-seen times so stats count each visitor on its own 5-minute clock.
-- C: visitors (community:{id}:visitors HASH), authenticated, anonymous (SETs), seen (ZSET,
--   everyone), seen_authenticated (ZSET, signed-in visitors, so stats count them with ZCOUNT),
--   footprint (the visitor's erasure footprint SET), footprint_ttl (s: a day past the analytics
--   keys it also lists, the same rule as count.lua's callers).
-- visitor: visitor key; doc: visitor JSON object without pages_viewed (the API's own, never
-- empty: the count is spliced in as text); now: ms; window: s;
-- authenticated: true or false. Returns the visitor's pages_viewed.
local function community_visit(C, visitor, doc, now, window, authenticated)
  local prev = redis.call('HGET', C.visitors, visitor)
  local pages = 0
  if prev then
    local ok, d = pcall(cjson.decode, prev)
    if ok and type(d) == 'table' then pages = tonumber(d.pages_viewed) or 0 end
  end
  pages = pages + 1
  redis.call('HSET', C.visitors, visitor, string.sub(doc, 1, -2) .. ',"pages_viewed":' .. pages .. '}')
  -- A visitor key names its kind (anon:… or user:…), so it is only ever in one of the two sets.
  local kind_set = authenticated and C.authenticated or C.anonymous
  redis.call('SADD', kind_set, visitor)
  -- Entries older than the window are trimmed when the set gains a visitor; until then stats
  -- skip them by score.
  local cutoff = now - window * 1000
  local ttl = tostring(window)
  if redis.call('ZADD', C.seen, now, visitor) == 1 then
    redis.call('ZREMRANGEBYSCORE', C.seen, '-inf', cutoff)
  end
  if authenticated then
    if redis.call('ZADD', C.seen_authenticated, now, visitor) == 1 then
      redis.call('ZREMRANGEBYSCORE', C.seen_authenticated, '-inf', cutoff)
    end
    redis.call('EXPIRE', C.seen_authenticated, ttl)
  end
  -- Each kind's set lives 5 minutes past its kind's last visit.
  redis.call('EXPIRE', C.visitors, ttl)
  redis.call('EXPIRE', kind_set, ttl)
  redis.call('EXPIRE', C.seen, ttl)
  if not prev then
    redis.call('SADD', C.footprint, C.visitors)
    redis.call('EXPIRE', C.footprint, C.footprint_ttl)
  end
  return pages
end
