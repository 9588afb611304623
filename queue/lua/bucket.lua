-- A queue's token bucket (its rate limit), shared by fetch.lua and rate.lua, which start with
-- this file. The hash holds `t` (tokens, a decimal; below 0 while the Celery bridge has reserved
-- slots ahead) and `at` (the Redis time of the last refill).

-- The tokens in bucket `key` at Redis time `now`, refilled at `rate` per ms up to `burst`. A clock
-- that went back (a failover to another host) refills nothing and stalls nothing: the next write
-- stamps `now`.
local function bucket_tokens(key, now, rate, burst)
  local b = redis.call('HMGET', key, 't', 'at')
  local tokens = tonumber(b[1]) or burst
  local at = tonumber(b[2]) or now
  if now > at then tokens = math.min(burst, tokens + (now - at) * rate) end
  return tokens
end

-- Store `tokens` at `now`; the key is kept until the bucket would be full again.
local function bucket_store(key, now, rate, burst, tokens)
  redis.call('HSET', key, 't', string.format('%.6f', tokens), 'at', now)
  redis.call('PEXPIRE', key, string.format('%d', math.ceil((burst - tokens) / rate) + 1000))
end
-- end of bucket_lib
