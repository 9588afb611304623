-- One authenticated page view: the session document's pages_visited and last_activity (its TTL
-- kept), and the day's counters (count.lua), whole or not at all: every check runs first, and a
-- view is counted only when it will be answered as tracked.
-- KEYS: 1 session:{id}, 2 paths, 3 counters, 4 visitors, 5 sketch, 6 footprint, 7 the overflow
--   path's counters, 8 its visitors, 9 its sketch.
-- ARGV: 1 now (RFC 3339), 2 url path, 3 page type, 4 visitor key, 5 counters ttl s, 6 is bot (1/0),
--   7 user id, 8 distinct paths a day at most, 9 exact unique visitors a path at most, 10 count
--   without a document (1: the database holds the session, 0: unknown yet).
-- Returns pages visited per the document; -1 when the session key is gone (counted only with
-- ARGV[10] = 1); or -2 (and changes nothing) when the document names another user.
local raw = redis.call('GET', KEYS[1])
local doc = nil
if raw then
  local ok, decoded = pcall(cjson.decode, raw)
  if ok and type(decoded) == 'table' then doc = decoded end
  if doc and doc.user_id ~= nil and doc.user_id ~= cjson.null
      and string.lower(tostring(doc.user_id)) ~= ARGV[7] then
    return -2
  end
end
if not doc and ARGV[10] ~= '1' then return -1 end
local ttl = tonumber(ARGV[5])
local V, T
if ARGV[6] ~= '1' then
  expect(KEYS[6], 'set')
  V = {paths = KEYS[2], counters = KEYS[3], visitors = KEYS[4], sketch = KEYS[5],
       other_counters = KEYS[7], other_visitors = KEYS[8], other_sketch = KEYS[9],
       path = ARGV[2], page_type = ARGV[3], visitor = ARGV[4], kind = 'authenticated', ttl = ttl,
       max_paths = tonumber(ARGV[8]), max_exact = tonumber(ARGV[9])}
  T = count_target(V)
end
if V and count_view(V, T) then
  -- The visitor's footprint lists the visitor sets holding it, a day longer than they live.
  redis.call('SADD', KEYS[6], T.visitors)
  redis.call('EXPIRE', KEYS[6], ttl + 86400)
end
if not doc then return -1 end
doc.pages_visited = (tonumber(doc.pages_visited) or 0) + 1
doc.last_activity = ARGV[1]
redis.call('SET', KEYS[1], cjson.encode(doc), 'KEEPTTL')
return doc.pages_visited
