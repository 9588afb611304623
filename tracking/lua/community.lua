-- One visit to a community page (community_lib.lua), for a signed-in visitor's view.
-- KEYS: 1 community:{id}:visitors, 2 …:authenticated, 3 …:anonymous, 4 …:seen, 5
--   …:seen:authenticated, 6 the visitor's footprint (none on a Redis Cluster: it is another slot,
--   written by the caller before this runs).
-- ARGV: 1 visitor key, 2 visitor JSON without pages_viewed, 3 (unused: the clock is Redis's
--   TIME, as for every other visit), 4 window s, 5 authenticated (1/0), 6 analytics counters ttl
--   s (the footprint lives a day longer).
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
return community_visit(
  {visitors = KEYS[1], authenticated = KEYS[2], anonymous = KEYS[3], seen = KEYS[4],
   seen_authenticated = KEYS[5], footprint = KEYS[6], footprint_ttl = tonumber(ARGV[6]) + 86400},
  ARGV[1], ARGV[2], now, tonumber(ARGV[4]), ARGV[5] == '1')
