-- A batch of anonymous page views, each applied whole or not at all, and on its own (one view's
-- error does not stop the others): the live session document (created on the first view, its TTL
-- renewed by each), the view buffered for the database, the day's counters (count.lua), the
-- community visit (community_lib.lua) and the jobs the view calls for, stored with queue_push (the
-- head of the queue crate's push.lua, queue::push_lib()): finalize_anonymous_session when
-- the session is new (exactly once per session: the session is created here, atomically), due on
-- this server's clock one timeout and a second later, and persist_anonymous_session on every n-th
-- page.
-- All or nothing: Redis does not roll a script back, so every check that can fail (the type of
-- every key the view writes) runs before the view's first write; after that only writes to keys
-- of the right type follow. The script declares flags (first line, added by scripts.rs), so an
-- out-of-memory server refuses the whole run before it starts instead of failing halfway.
-- A session outlives its document: its first buffered view carries the session's first document
-- and each view its number in the session, and the buffer lives `buffer ttl` (hours) from the
-- last view, so a finalize that runs late still finds everything it must write.
-- KEYS: 1 persist jobs, 2 persist pending, 3 persist scheduled, 4 finalize jobs, 5 finalize
--   pending, 6 finalize scheduled, 7 anon_sessions:open; then per view 10 keys: anon_session:{fp},
--   its views list, the page's paths, counters, visitors and sketch keys, the footprint
--   (visitor:anon_{fp}:footprint), the overflow path's counters, visitors and sketch; and 5 more
--   when it is a community page: community:{id}:visitors, …:authenticated, …:anonymous, …:seen,
--   …:seen:authenticated.
-- ARGV: the batch's arguments, then each view's, named below as tracking/src/batch.rs names them
--   (`BatchArgs` and `ViewArgs`, one struct each with a doc line per field; a test there checks
--   that these tables list the same names in the same order). Each argument costs Redis about
--   0.2 µs to read and hand to Lua, so rarely used values travel packed and are unpacked only when
--   needed (the new session's document, the community visit).
-- Job ids are the session's: finalize `<session id>`, persist `<session id>-<pages visited>`, so
-- erasure can name every job that carries a visitor's fingerprint.
-- Returns 3 values per view: {session id, pages visited, flags (1 new session, 2 persist
-- enqueued)}, or {'', -1, error text} for a view that failed (and changed nothing).
local BATCH = {persist_notify = 1, finalize_notify = 2, persist_every = 3, session_ttl = 4,
  counters_ttl = 5, community_window = 6, buffer_ttl = 7, max_paths = 8, max_exact = 9,
  view_count = 10}
local VIEW = {new_session = 0, time = 1, url = 2, is_bot = 3, view = 4, path = 5, page_type = 6,
  visitor = 7, finalize_job = 8, persist_job = 9, community_visit = 10}
local PER_VIEW = 11
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local persist_every = tonumber(ARGV[BATCH.persist_every])
-- Numbers handed to redis.call are formatted on every call: TTLs go as the strings they came as.
local ttl = ARGV[BATCH.session_ttl]
local finalize_after = tonumber(ttl) * 1000 + 1000
local counters_ttl = tonumber(ARGV[BATCH.counters_ttl])
local footprint_ttl = tostring(counters_ttl + 86400)
local window = tonumber(ARGV[BATCH.community_window])
local buffer_ttl = ARGV[BATCH.buffer_ttl]
local max_paths = tonumber(ARGV[BATCH.max_paths])
local max_exact = tonumber(ARGV[BATCH.max_exact])
local n = tonumber(ARGV[BATCH.view_count])
local pushed_persist, pushed_finalize = false, false

-- The queue keys are the deployment's own; checked once per run.
for i, want in ipairs({'hash', 'list', 'zset', 'hash', 'list', 'zset', 'zset'}) do
  expect(KEYS[i], want)
end

local function view(k, a)
  -- 1. Reads and checks: nothing is written until all of them pass.
  local raw = redis.call('GET', KEYS[k])
  local doc = nil
  if raw then
    local ok, decoded = pcall(cjson.decode, raw)
    if ok and type(decoded) == 'table' and decoded.session_id then doc = decoded end
  end
  expect(KEYS[k + 1], 'list')
  local counted = ARGV[a + VIEW.is_bot] ~= '1'
  local community = ARGV[a + VIEW.community_visit] ~= ''
  local V, T
  if counted or community then expect(KEYS[k + 6], 'set') end
  if counted then
    V = {paths = KEYS[k + 2], counters = KEYS[k + 3], visitors = KEYS[k + 4],
         sketch = KEYS[k + 5], other_counters = KEYS[k + 7], other_visitors = KEYS[k + 8],
         other_sketch = KEYS[k + 9], path = ARGV[a + VIEW.path],
         page_type = ARGV[a + VIEW.page_type], visitor = ARGV[a + VIEW.visitor],
         kind = 'anonymous', ttl = counters_ttl, max_paths = max_paths, max_exact = max_exact}
    T = count_target(V)
  end
  if community then
    for i, want in ipairs({'hash', 'set', 'set', 'zset', 'zset'}) do
      expect(KEYS[k + 9 + i], want)
    end
  end
  local flags = 0
  if not doc then
    flags = 1
    doc = cjson.decode(ARGV[a + VIEW.new_session])
  end
  doc.pages_visited = (tonumber(doc.pages_visited) or 0) + 1
  doc.last_activity = ARGV[a + VIEW.time]
  doc.current_page = ARGV[a + VIEW.url]
  local sid = cjson.encode(doc.session_id)
  local encoded = cjson.encode(doc)
  -- 2. Writes, the counters first (their HINCRBY is the one step that could still fail).
  if counted and count_view(V, T) then
    -- The footprint (what erasure reads) names each visitor set the visitor joined.
    redis.call('SADD', KEYS[k + 6], T.visitors)
    redis.call('EXPIRE', KEYS[k + 6], footprint_ttl)
  end
  redis.call('SET', KEYS[k], encoded, 'EX', ttl)
  -- The view JSON is an object with at least one field: the session id and the view's number go
  -- in front as text; a session's first view also carries its first document.
  local head = '{"session_id":' .. sid .. ',"n":' .. doc.pages_visited .. ','
  if flags == 1 then head = head .. '"session":' .. encoded .. ',' end
  redis.call('RPUSH', KEYS[k + 1], head .. string.sub(ARGV[a + VIEW.view], 2))
  redis.call('EXPIRE', KEYS[k + 1], buffer_ttl)
  if community then
    community_visit({visitors = KEYS[k + 10], authenticated = KEYS[k + 11],
                     anonymous = KEYS[k + 12], seen = KEYS[k + 13],
                     seen_authenticated = KEYS[k + 14],
                     footprint = KEYS[k + 6], footprint_ttl = footprint_ttl},
                    ARGV[a + VIEW.visitor], ARGV[a + VIEW.community_visit], now_ms, window, false)
  end
  if flags == 1 then
    queue_push(KEYS[4], KEYS[5], KEYS[6], doc.session_id, ARGV[a + VIEW.finalize_job],
               now_ms + finalize_after, now_ms)
    redis.call('ZADD', KEYS[7], now_ms, doc.device_fingerprint)
    pushed_finalize = true
  end
  if persist_every > 0 and doc.pages_visited % persist_every == 0 then
    queue_push(KEYS[1], KEYS[2], KEYS[3], doc.session_id .. '-' .. doc.pages_visited,
               ARGV[a + VIEW.persist_job], now_ms, now_ms)
    pushed_persist = true
    flags = flags + 2
  end
  return {doc.session_id, doc.pages_visited, flags}
end

local out = {}
local k, a = 8, BATCH.view_count + 1
for _ = 1, n do
  local ok, r = pcall(view, k, a)
  if ok then
    out[#out + 1] = r[1]; out[#out + 1] = r[2]; out[#out + 1] = r[3]
  else
    out[#out + 1] = ''; out[#out + 1] = -1
    out[#out + 1] = type(r) == 'table' and tostring(r.err) or tostring(r)
  end
  k = k + 10
  if ARGV[a + VIEW.community_visit] ~= '' then k = k + 5 end
  a = a + PER_VIEW
end
local persist_notify, finalize_notify = ARGV[BATCH.persist_notify], ARGV[BATCH.finalize_notify]
if pushed_persist and persist_notify ~= '' then redis.call('PUBLISH', persist_notify, '1') end
if pushed_finalize and finalize_notify ~= '' then redis.call('PUBLISH', finalize_notify, '1') end
return out
