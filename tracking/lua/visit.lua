-- On a Redis Cluster, the visitor's own step of an anonymous page view (views.lua does the whole
-- view in one run on one server): the live session document (created on the first view, its TTL
-- renewed by each), the view buffered for the database, the open-session list of the visitor's
-- shard, and the footprint, all in the visitor shard's slot, whole or not at all. The footprint
-- gets the names of every set the later steps may add the visitor to (the day's visitor sets,
-- the community's hash), before those steps run, so an erasure always finds them.
-- KEYS: 1 anon_session:{fp}, 2 its views list, 3 the visitor's footprint, 4 the shard's
--   anon_sessions:open, 5 the view's own key (anon_view:{fp}:{token}).
-- ARGV: 1 session ttl s, 2 buffer ttl s, 3 footprint ttl s, 4 the new session's document, 5 time
--   (RFC 3339), 6 url, 7 the view (JSON object), 8 fingerprint, 9 persist every n-th page (0:
--   never), 10 how long the view's key lives (s), 11.. footprint entries.
-- Idempotent: the view's key (named by the page's view id, or a token per request) keeps the
-- answer, so a run repeated with the same key (the cluster client re-sends a request whose
-- connection dropped; a client retries a view it got no answer for) applies nothing and answers
-- as the first run did, whatever other views of the visitor ran in between.
-- Returns {session id, pages visited, flags (1 new session, 2 persist due), Redis ms}.
for i, want in ipairs({'list', 'set', 'zset'}) do
  local got = redis.call('TYPE', KEYS[i + 1])['ok']
  if got ~= 'none' and got ~= want then
    error('key ' .. KEYS[i + 1] .. ' holds a ' .. got .. ', not a ' .. want, 0)
  end
end
local raw = redis.call('GET', KEYS[1])
local doc = nil
if raw then
  local ok, decoded = pcall(cjson.decode, raw)
  if ok and type(decoded) == 'table' and decoded.session_id then doc = decoded end
end
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local seen = redis.call('GET', KEYS[5])
if seen then
  local sid, pages, done = string.match(seen, '^(%S+) (%d+) (%d+)$')
  if sid then return {sid, tonumber(pages), tonumber(done), now_ms} end
end
local flags = 0
if not doc then
  flags = 1
  doc = cjson.decode(ARGV[4])
end
doc.pages_visited = (tonumber(doc.pages_visited) or 0) + 1
doc.last_activity = ARGV[5]
doc.current_page = ARGV[6]
local every = tonumber(ARGV[9])
if every > 0 and doc.pages_visited % every == 0 then flags = flags + 2 end
local encoded = cjson.encode(doc)
redis.call('SET', KEYS[5], doc.session_id .. ' ' .. doc.pages_visited .. ' ' .. flags, 'EX', ARGV[10])
if #ARGV >= 11 then
  redis.call('SADD', KEYS[3], unpack(ARGV, 11))
  redis.call('EXPIRE', KEYS[3], ARGV[3])
end
redis.call('SET', KEYS[1], encoded, 'EX', ARGV[1])
local head = '{"session_id":' .. cjson.encode(doc.session_id) .. ',"n":' .. doc.pages_visited .. ','
if flags % 2 == 1 then head = head .. '"session":' .. encoded .. ',' end
redis.call('RPUSH', KEYS[2], head .. string.sub(ARGV[7], 2))
redis.call('EXPIRE', KEYS[2], ARGV[2])
if flags % 2 == 1 then redis.call('ZADD', KEYS[4], now_ms, ARGV[8]) end
return {doc.session_id, doc.pages_visited, flags, now_ms}
