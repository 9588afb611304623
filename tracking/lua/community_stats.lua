-- Visitors seen within the window, split by kind. KEYS: 1 …:seen. ARGV: 1 now ms, 2 window s.
-- Returns {authenticated, anonymous}.
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], tonumber(ARGV[1]) - tonumber(ARGV[2]) * 1000, '+inf')
local auth, anon = 0, 0
for _, k in ipairs(ids) do
  if string.sub(k, 1, 5) == 'user:' then auth = auth + 1 else anon = anon + 1 end
end
return {auth, anon}
