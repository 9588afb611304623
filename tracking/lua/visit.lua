-- On a Redis Cluster, the visitor's own step of an anonymous page view (views.lua does the whole
-- view in one run on one server): the live session document (created on the first view, its TTL
-- renewed by each), the view buffered for the database, the open-session list of the visitor's
-- shard, and the footprint, all in the visitor shard's slot, whole or not at all. The footprint
-- gets the names of every set the later steps may add the visitor to (the day's visitor sets,
-- the community's hash), before those steps run, so an erasure always finds them.
-- KEYS: 1 anon_session:{fp}, 2 its views list, 3 the visitor's footprint, 4 the shard's
--   anon_sessions:open.
-- ARGV: 1 session ttl s, 2 buffer ttl s, 3 footprint ttl s, 4 the new session's document, 5 time
--   (RFC 3339), 6 url, 7 the view (JSON object), 8 fingerprint, 9 persist every n-th page (0:
--   never), 10 the view's token (unique per request), 11.. footprint entries.
-- Idempotent: the document keeps the last view's token and flags (`_view`), so a run repeated
-- with the same token (a cluster client re-sends a request whose connection dropped) applies
-- nothing and answers as the first run did.
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
if doc and type(doc._view) == 'string' then
  local token, done = string.match(doc._view, '^(%S+) (%d+)$')
  if token == ARGV[10] then return {doc.session_id, doc.pages_visited, tonumber(done), now_ms} end
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
doc._view = ARGV[10] .. ' ' .. flags
local encoded = cjson.encode(doc)
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
