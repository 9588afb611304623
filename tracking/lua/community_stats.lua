-- Visitors seen within the window, split by kind, each on its own clock. Two ZCOUNTs: the cost
-- does not grow with the number of visitors.
-- KEYS: 1 …:seen (everyone), 2 …:seen:authenticated. ARGV: 1 now ms, 2 window s.
-- Returns {authenticated, anonymous}.
local from = tonumber(ARGV[1]) - tonumber(ARGV[2]) * 1000
local total = redis.call('ZCOUNT', KEYS[1], from, '+inf')
local auth = math.min(redis.call('ZCOUNT', KEYS[2], from, '+inf'), total)
return {auth, total - auth}
