-- On a Redis Cluster, the day's step of a page view (count.lua): count it into the day's
-- counters, all in the day's slot. The visitor's footprint was written by its own step.
-- KEYS: 1 paths, 2 counters, 3 visitors, 4 sketch, 5 the overflow path's counters, 6 its
--   visitors, 7 its sketch.
-- ARGV: 1 path, 2 page type, 3 visitor key, 4 kind ('anonymous' or 'authenticated'), 5 ttl s,
--   6 distinct paths a day at most, 7 exact unique visitors a path at most.
-- Returns the path counted (the view's, or '(other)').
local V = {paths = KEYS[1], counters = KEYS[2], visitors = KEYS[3], sketch = KEYS[4],
  other_counters = KEYS[5], other_visitors = KEYS[6], other_sketch = KEYS[7], path = ARGV[1],
  page_type = ARGV[2], visitor = ARGV[3], kind = ARGV[4], ttl = tonumber(ARGV[5]),
  max_paths = tonumber(ARGV[6]), max_exact = tonumber(ARGV[7])}
local T = count_target(V)
count_view(V, T)
return T.path
