-- One page of a queue's jobs in one state. KEYS: 1 the state's key (pending LIST, or the
-- scheduled, running, done or dead ZSET), 2 jobs, 3 attempts, 4 errors. ARGV: 1 offset, 2 count
-- (the caller bounds it). Returns, per job, 5 values: id, stored value (or false when the job
-- left the hash meanwhile), attempts, last error or false, the state's score (due, lease
-- deadline, finish time; ms) or false for a pending job; then the state's total length last.
local first = tonumber(ARGV[1])
local last = first + tonumber(ARGV[2]) - 1
local out = {}
local ids, scores
if redis.call('TYPE', KEYS[1]).ok == 'list' then
  ids = redis.call('LRANGE', KEYS[1], first, last)
else
  local flat = redis.call('ZRANGE', KEYS[1], first, last, 'WITHSCORES')
  ids, scores = {}, {}
  for i = 1, #flat, 2 do
    ids[#ids + 1] = flat[i]
    scores[#scores + 1] = flat[i + 1]
  end
end
for i, id in ipairs(ids) do
  out[#out + 1] = id
  out[#out + 1] = redis.call('HGET', KEYS[2], id)
  out[#out + 1] = redis.call('HGET', KEYS[3], id) or '0'
  out[#out + 1] = redis.call('HGET', KEYS[4], id)
  out[#out + 1] = scores and scores[i] or false
end
local total
if redis.call('TYPE', KEYS[1]).ok == 'list' then total = redis.call('LLEN', KEYS[1])
else total = redis.call('ZCARD', KEYS[1]) end
out[#out + 1] = total
return out
