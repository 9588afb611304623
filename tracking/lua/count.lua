-- Shared prelude: count one view for the day's page analytics (exact: counters and a visitor set).
-- Arguments come through the table V: paths, counters, visitors keys; path, page type, visitor
-- key, kind ('anonymous' or 'authenticated'), ttl seconds. Returns true when the visitor is new
-- to the path that day (the caller records where the visitor now is, for erasure).
-- Each redis.call costs a script about as much as the command itself, so keys are written only
-- when something changes. On the first view of each kind that day (the aggregate job derives the
-- total from the two kinds) the path joins the day's path set, the counters hash and the visitor
-- set get their TTL (the visitor set is made by the first view of either kind), and the page
-- type is recorded (a path keeps the page type of its first view). The path set lives a day
-- longer than the keys it lists, from the last path added, so erasure can always walk it.
local function count_view(V)
  if redis.call('HINCRBY', V.counters, V.kind, '1') == 1 then
    if V.page_type ~= '' then redis.call('HSET', V.counters, 'page_type', V.page_type) end
    redis.call('EXPIRE', V.counters, V.ttl)
    if redis.call('SADD', V.paths, V.path) == 1 then redis.call('EXPIRE', V.paths, V.ttl + 86400) end
    local new = redis.call('SADD', V.visitors, V.visitor) == 1
    redis.call('EXPIRE', V.visitors, V.ttl)
    return new
  end
  return redis.call('SADD', V.visitors, V.visitor) == 1
end
