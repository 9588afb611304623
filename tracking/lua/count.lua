-- Shared prelude of the page-view scripts: checks made before a view writes anything, and the
-- day's page analytics counters (exact counts, exact unique visitors up to a cap, a sketch past it).
--
-- expect(key, type): fail (before any write) unless the key is missing or of that type.
--
-- count_target(V): check the keys a view counts into and decide where it counts. V: paths,
-- counters, visitors, sketch keys of the page; other_counters, other_visitors, other_sketch keys of
-- the overflow path '(other)'; path, page type, visitor key, kind ('anonymous' or
-- 'authenticated'), ttl s, max_paths (distinct paths a day, 0 = no cap), max_exact (exact unique
-- visitors a path, 0 = no cap). A path new to the day past max_paths counts as '(other)', so a
-- flood of random paths costs a bounded number of keys. Returns the target T: counters,
-- visitors, sketch, path.
--
-- count_view(V, T): count one view into T; callers run it as a view's first write (its HINCRBY is
-- the only step that can still fail, on a non-integer counter). Returns true when the visitor
-- joined T.visitors (the caller records that set in the visitor's footprint, for erasure). Each redis.call costs a script
-- about as much as the command itself, so keys are written only when something changes. On the
-- first view of each kind that day (the aggregate job derives the total from the two kinds) the
-- path joins the day's path set and the counters hash gets its TTL, and the page type is recorded (a path keeps the page type of its first view). The path set lives a day longer
-- than the keys it lists, from the last path added, so erasure can always walk it. A visitor set
-- lives a TTL from its last new visitor. A visitor new to
-- a path whose exact set is full is added to the path's HyperLogLog sketch instead (12 KB at most,
-- about 0.8 % error, no identity kept): unique visitors = SCARD(visitors) + PFCOUNT(sketch).
local function expect(key, want)
  local got = redis.call('TYPE', key)['ok']
  if got ~= 'none' and got ~= want then
    error('key ' .. key .. ' holds a ' .. got .. ', not a ' .. want, 0)
  end
end

local function count_target(V)
  expect(V.paths, 'set')
  local T = {counters = V.counters, visitors = V.visitors, sketch = V.sketch, path = V.path}
  -- A path with counters today is counted already: only a new one meets the cap (two lookups).
  local counters = redis.call('TYPE', V.counters)['ok']
  if counters == 'none' and V.max_paths > 0 and redis.call('SISMEMBER', V.paths, V.path) == 0
      and redis.call('SCARD', V.paths) >= V.max_paths then
    T = {counters = V.other_counters, visitors = V.other_visitors, sketch = V.other_sketch,
         path = '(other)'}
    expect(T.counters, 'hash')
  elseif counters ~= 'none' and counters ~= 'hash' then
    error('key ' .. V.counters .. ' holds a ' .. counters .. ', not a hash', 0)
  end
  expect(T.visitors, 'set')
  -- A sketch must be a HyperLogLog, not just any string (PFADD would fail after other writes).
  if redis.call('TYPE', T.sketch)['ok'] ~= 'none'
      and not pcall(redis.call, 'PFCOUNT', T.sketch) then
    error('key ' .. T.sketch .. ' is not a HyperLogLog', 0)
  end
  return T
end

local function count_visitor(V, T)
  if redis.call('SADD', T.visitors, V.visitor) == 0 then return false end
  if V.max_exact > 0 and redis.call('SCARD', T.visitors) > V.max_exact then
    redis.call('SREM', T.visitors, V.visitor)
    if redis.call('PFADD', T.sketch, V.visitor) == 1 then redis.call('EXPIRE', T.sketch, V.ttl) end
    return false
  end
  -- Renewed with each new visitor, so a set emptied by erasures and filled again still expires.
  redis.call('EXPIRE', T.visitors, V.ttl)
  return true
end

local function count_view(V, T)
  if redis.call('HINCRBY', T.counters, V.kind, '1') == 1 then
    if V.page_type ~= '' then redis.call('HSET', T.counters, 'page_type', V.page_type) end
    redis.call('EXPIRE', T.counters, V.ttl)
    if redis.call('SADD', V.paths, T.path) == 1 then redis.call('EXPIRE', V.paths, V.ttl + 86400) end
  end
  return count_visitor(V, T)
end
