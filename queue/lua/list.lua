-- One page of a queue's jobs in one state. KEYS: 1 the state's key (pending LIST, or the
-- scheduled, running, done or dead ZSET), 2 jobs, 3 attempts, 4 errors. ARGV: 1 offset, 2 count
-- (the caller bounds it), 3 retrying filter: '1' keeps only jobs with attempts (the scheduled
-- jobs waiting for a retry), reading at most ARGV[4] entries of the state from the offset.
-- Returns, per job, 5 values: id, stored value (or false when the job left the hash meanwhile),
-- attempts, last error or false, the state's score (due, lease deadline, finish time; ms) or
-- false for a pending job; then the offset after the last entry read, then the state's total
-- length (with the filter: -1, as counting would read every entry).
local first = tonumber(ARGV[1])
local want = tonumber(ARGV[2])
local retrying = ARGV[3] == '1'
local span = retrying and tonumber(ARGV[4]) or want
local last = first + span - 1
local out = {}
local ids, scores
local is_list = redis.call('TYPE', KEYS[1]).ok == 'list'
if is_list then
  ids = redis.call('LRANGE', KEYS[1], first, last)
else
  local flat = redis.call('ZRANGE', KEYS[1], first, last, 'WITHSCORES')
  ids, scores = {}, {}
  for i = 1, #flat, 2 do
    ids[#ids + 1] = flat[i]
    scores[#scores + 1] = flat[i + 1]
  end
end
local taken, read = 0, 0
for i, id in ipairs(ids) do
  if taken >= want then break end
  read = i
  local attempts = redis.call('HGET', KEYS[3], id) or '0'
  if not retrying or tonumber(attempts) > 0 then
    out[#out + 1] = id
    out[#out + 1] = redis.call('HGET', KEYS[2], id)
    out[#out + 1] = attempts
    out[#out + 1] = redis.call('HGET', KEYS[4], id)
    out[#out + 1] = scores and scores[i] or false
    taken = taken + 1
  end
end
local total
if retrying then total = -1
elseif is_list then total = redis.call('LLEN', KEYS[1])
else total = redis.call('ZCARD', KEYS[1]) end
out[#out + 1] = first + read
out[#out + 1] = total
return out
