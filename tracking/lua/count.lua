-- Shared prelude: count one view for the day's page analytics (exact: counters and a visitor set).
-- Arguments come through the table V: paths, counters, visitors, footprint keys; path, page type,
-- visitor key, kind ('anonymous' or 'authenticated'), ttl seconds.
local function count_view(V)
  redis.call('SADD', V.paths, V.path)
  redis.call('EXPIRE', V.paths, V.ttl)
  redis.call('HINCRBY', V.counters, 'total', 1)
  redis.call('HINCRBY', V.counters, V.kind, 1)
  if V.page_type ~= '' then redis.call('HSET', V.counters, 'page_type', V.page_type) end
  redis.call('EXPIRE', V.counters, V.ttl)
  redis.call('SADD', V.visitors, V.visitor)
  redis.call('EXPIRE', V.visitors, V.ttl)
  redis.call('SADD', V.footprint, V.visitors)
  redis.call('EXPIRE', V.footprint, V.ttl)
end
