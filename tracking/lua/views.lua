-- A batch of anonymous page views, each applied atomically and on its own (one view's error does
-- not stop the others): the live session document (created on the first view, its TTL renewed by
-- each), the view buffered for the database, the day's counters (count.lua), the community visit
-- (community_lib.lua) and the jobs the view calls for, stored with queue_push (the head of the
-- queue crate's push.lua, celeriac_queue::push_lib()): finalize_anonymous_session when the session
-- is new (exactly once per session: the session is created here, atomically), and
-- persist_anonymous_session on every n-th page.
-- KEYS: 1 persist jobs, 2 persist pending, 3 persist scheduled, 4 finalize jobs, 5 finalize
--   pending, 6 finalize scheduled; then per view 6 keys: anon_session:{fp}, its views list,
--   paths, counters, visitors, footprint (visitor:anon:{fp}:footprint); and 5 more when it is a community page:
--   community:{id}:visitors, …:authenticated, …:anonymous, …:seen, …:seen:authenticated.
-- ARGV: 1 persist notify channel, 2 finalize notify channel, 3 persist every n pages (0 = never),
--   4 session ttl s, 5 counters ttl s, 6 community window s, 7 view count; then per view 11 (each
--   argument costs Redis about 0.2 µs to read and hand to Lua, so rarely used values travel packed
--   and are unpacked only when needed): 1 the new session's document (JSON, pages_visited 0: used
--   when the view starts a session), 2 now (RFC 3339), 3 url, 4 is bot (1/0), 5 view JSON (an
--   object, not empty), 6 url path, 7 page type, 8 visitor key, 9 finalize job
--   `<id>|<due epoch ms>|<payload>`, 10 persist job `<id>|<payload>`, 11 community visit
--   `<now epoch ms>|<visitor JSON>` ('' = not a community page).
-- Returns 3 values per view: {session id, pages visited, flags (1 new session, 2 persist
-- enqueued)}, or {'', -1, error text} for a view that failed.
local PER_VIEW = 11
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local persist_every = tonumber(ARGV[3])
-- Numbers handed to redis.call are formatted on every call: TTLs go as the strings they came as.
local ttl = ARGV[4]
local views_ttl = tostring(tonumber(ttl) * 2)
local counters_ttl = tonumber(ARGV[5])
local window = tonumber(ARGV[6])
local n = tonumber(ARGV[7])
local pushed_persist, pushed_finalize = false, false

local function view(k, a)
  local doc = nil
  local raw = redis.call('GET', KEYS[k])
  if raw then
    local ok, decoded = pcall(cjson.decode, raw)
    if ok and type(decoded) == 'table' and decoded.session_id then doc = decoded end
  end
  local flags = 0
  if not doc then
    flags = 1
    doc = cjson.decode(ARGV[a])
  end
  doc.pages_visited = (tonumber(doc.pages_visited) or 0) + 1
  -- RFC 3339 times in UTC: the first 10 characters are the day.
  local new_day = type(doc.last_activity) ~= 'string'
    or string.sub(doc.last_activity, 1, 10) ~= string.sub(ARGV[a + 1], 1, 10)
  doc.last_activity = ARGV[a + 1]
  doc.current_page = ARGV[a + 2]
  redis.call('SET', KEYS[k], cjson.encode(doc), 'EX', ttl)
  -- The view JSON is an object with at least one field: splice the session id in as text.
  redis.call('RPUSH', KEYS[k + 1],
    '{"session_id":' .. cjson.encode(doc.session_id) .. ',' .. string.sub(ARGV[a + 4], 2))
  redis.call('EXPIRE', KEYS[k + 1], views_ttl)
  if ARGV[a + 3] ~= '1' then
    count_view({paths = KEYS[k + 2], counters = KEYS[k + 3], visitors = KEYS[k + 4],
                path = ARGV[a + 5], page_type = ARGV[a + 6], visitor = ARGV[a + 7],
                kind = 'anonymous', ttl = counters_ttl})
    -- The footprint (what erasure reads) names the day's path set once per session and day:
    -- erasure walks that day's paths and takes the visitor out of each visitor set.
    if new_day then
      redis.call('SADD', KEYS[k + 5], KEYS[k + 2])
      redis.call('EXPIRE', KEYS[k + 5], counters_ttl + 86400)
    end
  end
  if ARGV[a + 10] ~= '' then
    local at, visitor_doc = string.match(ARGV[a + 10], '^(%d+)|(.*)$')
    community_visit({visitors = KEYS[k + 6], authenticated = KEYS[k + 7], anonymous = KEYS[k + 8],
                     seen = KEYS[k + 9], seen_authenticated = KEYS[k + 10],
                     footprint = KEYS[k + 5], footprint_ttl = counters_ttl + 86400},
                    ARGV[a + 7], visitor_doc, tonumber(at), window, false)
  end
  if flags == 1 then
    local id, due, payload = string.match(ARGV[a + 8], '^([^|]+)|(-?%d+)|(.*)$')
    queue_push(KEYS[4], KEYS[5], KEYS[6], id, payload, tonumber(due), now_ms)
    pushed_finalize = true
  end
  if persist_every > 0 and doc.pages_visited % persist_every == 0 then
    local id, payload = string.match(ARGV[a + 9], '^([^|]+)|(.*)$')
    queue_push(KEYS[1], KEYS[2], KEYS[3], id, payload, now_ms, now_ms)
    pushed_persist = true
    flags = flags + 2
  end
  return {doc.session_id, doc.pages_visited, flags}
end

local out = {}
local k, a = 7, 8
for _ = 1, n do
  local ok, r = pcall(view, k, a)
  if ok then
    out[#out + 1] = r[1]; out[#out + 1] = r[2]; out[#out + 1] = r[3]
  else
    out[#out + 1] = ''; out[#out + 1] = -1
    out[#out + 1] = type(r) == 'table' and tostring(r.err) or tostring(r)
  end
  k = k + 6
  if ARGV[a + 10] ~= '' then k = k + 5 end
  a = a + PER_VIEW
end
if pushed_persist and ARGV[1] ~= '' then redis.call('PUBLISH', ARGV[1], '1') end
if pushed_finalize and ARGV[2] ~= '' then redis.call('PUBLISH', ARGV[2], '1') end
return out
