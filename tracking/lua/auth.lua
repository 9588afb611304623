-- One authenticated page view: the session document's pages_visited and last_activity (its TTL
-- kept), and the day's counters.
-- KEYS: 1 session:{id}, 2 paths, 3 counters, 4 visitors, 5 footprint.
-- ARGV: 1 now (RFC 3339), 2 url path, 3 page type, 4 visitor key, 5 counters ttl s, 6 is bot (1/0),
-- 7 user id.
-- Returns pages visited per the document, -1 when the session key is gone, or -2 (and changes
-- nothing) when the document names another user.
local pages = -1
local raw = redis.call('GET', KEYS[1])
if raw then
  local ok, doc = pcall(cjson.decode, raw)
  if ok and type(doc) == 'table' and doc.user_id ~= nil and doc.user_id ~= cjson.null
      and string.lower(tostring(doc.user_id)) ~= ARGV[7] then
    return -2
  end
  if ok and type(doc) == 'table' then
    doc.pages_visited = (tonumber(doc.pages_visited) or 0) + 1
    doc.last_activity = ARGV[1]
    redis.call('SET', KEYS[1], cjson.encode(doc), 'KEEPTTL')
    pages = doc.pages_visited
  end
end
if ARGV[6] ~= '1' then
  local ttl = tonumber(ARGV[5])
  if count_view({paths = KEYS[2], counters = KEYS[3], visitors = KEYS[4], path = ARGV[2],
                 page_type = ARGV[3], visitor = ARGV[4], kind = 'authenticated', ttl = ttl}) then
    -- The visitor's footprint lists the visitor sets holding it, a day longer than they live.
    redis.call('SADD', KEYS[5], KEYS[4])
    redis.call('EXPIRE', KEYS[5], ttl + 86400)
  end
end
return pages
