-- One job's state. KEYS: 1 scheduled, 2 running, 3 jobs, 4 attempts, 5 errors, 6 done, 7 dead. ARGV: 1 id.
-- Returns {} when unknown, else {status, attempts, last error or false, stored value, time ms (due, lease, finished) or false}.
local id = ARGV[1]
local v = redis.call('HGET', KEYS[3], id)
if not v then return {} end
local a = redis.call('HGET', KEYS[4], id) or '0'
local e = redis.call('HGET', KEYS[5], id)
local s = redis.call('ZSCORE', KEYS[2], id)
if s then return {'running', a, e, v, s} end
s = redis.call('ZSCORE', KEYS[7], id)
if s then return {'dead', a, e, v, s} end
s = redis.call('ZSCORE', KEYS[6], id)
if s then return {'done', a, e, v, s} end
s = redis.call('ZSCORE', KEYS[1], id)
if s then return {'scheduled', a, e, v, s} end
return {'queued', a, e, v, false}
