-- Take one token from a queue's token bucket (the one fetch.lua leases by) for work that starts
-- outside a fetch (the Celery bridge's messages). KEYS: 1 rate, 2 this message's reservation.
-- ARGV: 1 tokens per ms, 2 bucket size, 3 how long a reservation outlives its slot (ms).
-- Returns 0: run now (a token was taken, or this message's reserved slot has come). Else the
-- milliseconds until the slot reserved for it: the token is taken now (the bucket goes below
-- zero, so fetches wait for it too) and the reservation is kept, so the message, back at its
-- slot, runs without asking again. Waiting messages thus come back one slot apart, in order,
-- instead of all at the next token. Runs after lua/bucket.lua (the token bucket's functions).
if redis.call('DEL', KEYS[2]) == 1 then return 0 end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local rate, burst = tonumber(ARGV[1]), math.max(1, tonumber(ARGV[2]))
local tokens = bucket_tokens(KEYS[1], now, rate, burst) - 1
bucket_store(KEYS[1], now, rate, burst, tokens)
if tokens >= 0 then return 0 end
local wait = math.ceil(-tokens / rate)
redis.call('SET', KEYS[2], '1', 'PX', string.format('%d', wait + tonumber(ARGV[3])))
return wait
