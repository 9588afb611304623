-- Take one token from a queue's token bucket (the one fetch.lua leases by), for work that starts
-- outside a fetch (the Celery bridge's messages). KEYS: 1 rate. ARGV: 1 tokens per ms, 2 bucket size.
-- Returns 0 when a token was taken, else the milliseconds until one is back (nothing is taken).
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local rate, burst = tonumber(ARGV[1]), tonumber(ARGV[2])
local b = redis.call('HMGET', KEYS[1], 't', 'at')
local tokens = tonumber(b[1]) or burst
local at = tonumber(b[2]) or now
if now > at then
  tokens = math.min(burst, tokens + (now - at) * rate)
  at = now
end
if tokens < 1 then return math.max(1, math.ceil((1 - tokens) / rate)) end
redis.call('HSET', KEYS[1], 't', string.format('%.6f', tokens - 1), 'at', at)
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate) + 1000)
return 0
