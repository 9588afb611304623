-- Shared prelude: count one view for the day's page analytics (exact: counters and a visitor set).
-- Arguments come through the table V: paths, counters, visitors, footprint keys; path, page type,
-- visitor key, kind ('anonymous' or 'authenticated'), ttl seconds.
-- Keys are written only when something changes, to keep the page-view script short: the day's
-- keys get their TTL when they gain an entry (the key may have just been created), so it runs
-- from the last path, visitor or first view added that day; the visitor's footprint (what erasure
-- reads) gains the day's visitor set when the visitor first views the path that day, with a TTL a
-- day longer than the keys it lists, so it outlives every set it names.
local function count_view(V)
  if redis.call('SADD', V.paths, V.path) == 1 then redis.call('EXPIRE', V.paths, V.ttl) end
  if redis.call('HINCRBY', V.counters, 'total', '1') == 1 then redis.call('EXPIRE', V.counters, V.ttl) end
  redis.call('HINCRBY', V.counters, V.kind, '1')
  if V.page_type ~= '' then redis.call('HSET', V.counters, 'page_type', V.page_type) end
  if redis.call('SADD', V.visitors, V.visitor) == 1 then
    redis.call('EXPIRE', V.visitors, V.ttl)
    redis.call('SADD', V.footprint, V.visitors)
    redis.call('EXPIRE', V.footprint, tonumber(V.ttl) + 86400)
  end
end
