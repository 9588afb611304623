-- Visitors seen within the window, split by kind, each on its own clock. Two ZCOUNTs: the cost
-- does not grow with the number of visitors.
-- Every visit is stamped with Redis's TIME, and so is the window's start.
-- KEYS: 1 …:seen (everyone), 2 …:seen:authenticated. ARGV: 1 (unused), 2 window s.
-- Returns {authenticated, anonymous}.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local from = now - tonumber(ARGV[2]) * 1000
local total = redis.call('ZCOUNT', KEYS[1], from, '+inf')
local auth = math.min(redis.call('ZCOUNT', KEYS[2], from, '+inf'), total)
return {auth, total - auth}
