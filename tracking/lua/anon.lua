-- One anonymous page view, atomically: the live session document (created on the first view,
-- its TTL renewed by each), the view buffered for the database, and the day's counters.
-- KEYS: 1 anon_session:{fp}, 2 its views list, 3 paths, 4 counters, 5 visitors, 6 footprint.
-- ARGV: 1 new session id, 2 now (RFC 3339), 3 url, 4 referrer, 5 session ttl s, 6 fingerprint,
--   7 ip, 8 user agent, 9 device type, 10 browser, 11 os, 12 is bot (1/0), 13 view JSON (an object, not empty),
--   14 url path, 15 page type, 16 visitor key, 17 counters ttl s.
-- Returns {session id, pages visited, 1 when the session is new}.
local doc = nil
local raw = redis.call('GET', KEYS[1])
if raw then
  local ok, decoded = pcall(cjson.decode, raw)
  if ok and type(decoded) == 'table' and decoded.session_id then doc = decoded end
end
local new = 0
if not doc then
  new = 1
  doc = {
    session_id = ARGV[1], device_fingerprint = ARGV[6], started_at = ARGV[2], pages_visited = 0,
    landing_page = ARGV[3], referrer = ARGV[4], is_active = true, user_agent = ARGV[8],
    device_type = ARGV[9], browser = ARGV[10], os = ARGV[11], is_bot = (ARGV[12] == '1'),
  }
  if ARGV[7] ~= '' then doc.ip_address = ARGV[7] end
end
doc.pages_visited = (tonumber(doc.pages_visited) or 0) + 1
doc.last_activity = ARGV[2]
doc.current_page = ARGV[3]
local ttl = tonumber(ARGV[5])
redis.call('SET', KEYS[1], cjson.encode(doc), 'EX', ttl)
-- ARGV[13] is a JSON object with at least one field: splice the session id in as text (no
-- decode and encode per view).
redis.call('RPUSH', KEYS[2], '{"session_id":' .. cjson.encode(doc.session_id) .. ',' .. string.sub(ARGV[13], 2))
redis.call('EXPIRE', KEYS[2], ttl * 2)
if ARGV[12] ~= '1' then
  count_view({paths = KEYS[3], counters = KEYS[4], visitors = KEYS[5], footprint = KEYS[6],
              path = ARGV[14], page_type = ARGV[15], visitor = ARGV[16], kind = 'anonymous', ttl = tonumber(ARGV[17])})
end
return {doc.session_id, doc.pages_visited, new}
