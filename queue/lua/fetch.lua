-- Reap expired leases, promote due jobs, then lease a bounded batch to the caller.
-- KEYS: 1 pending, 2 scheduled, 3 running, 4 jobs, 5 attempts, 6 errors, 7 dead, 8 leases, 9 lease_seq,
-- 10 paused (while it exists nothing is leased: lost leases are still reaped and due jobs still
-- promoted, so nothing is lost, and `more` is 0 so fetchers wait for the resume's wake-up),
-- 11 rate (the token bucket, used only with a rate limit), 12 revoked,
-- 13.. foreign lists on this Redis whose raw messages are leased as they are (a queue's
-- `lease_from`: its staging list first, then the lists in priority order, each popped from the
-- right), taken only when the queue's own pending list is empty.
-- ARGV: 1 batch size, 2 lease ms, 3 max attempts, 4 reap limit, 5 promote limit,
-- 6 rate limit in tokens per ms (0: none), 7 bucket size, 8 (with foreign lists) a fresh id
-- prefix, unique to this call.
-- Returns {reaped, next_due_ms or -1, now_ms, more (0/1), throttled_until_ms or -1, adopted,
--          id, attempt, token, stored value, ...}; the last `adopted` jobs came from foreign lists.
-- A foreign message becomes a job in the same step that leases it: stored in the jobs hash (so a
-- lost lease runs it again), attempt 1, its id the call's prefix .. its place in the batch. The
-- prefix comes from the caller (a UUIDv7's 26 characters), not from a counter of this queue: ids
-- stay unique across the intake queues, and after Redis lost its last writes (a failover to a
-- lagging replica sets `lease_seq` back) a repeated token never comes with a repeated id.
-- A foreign key that is not a list is skipped (pcall): nothing already written in this call is
-- left half done.
-- Compared with adopting it first (adopt.lua) and leasing it later, nothing is hashed and the
-- message is not read back.
-- The token (fencing token) comes from the queue's lease counter: every lease gets a new one, so a
-- token is never given twice, whatever happens to the job's attempt count.
-- With a rate limit every leased job takes a token from the bucket every worker shares; when it
-- runs dry with jobs waiting, `throttled_until_ms` says when enough tokens for a batch are back
-- (the caller sleeps until then instead of asking again).
-- A revoked id (in `revoked`) is never leased: it goes to dead with the reason instead.
-- Runs after lua/bucket.lua (the token bucket's functions).
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local batch, lease, max_attempts = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local paused = redis.call('EXISTS', KEYS[10]) == 1
if paused then batch = 0 end
local rate, burst = tonumber(ARGV[6]) or 0, math.max(1, tonumber(ARGV[7]) or 1)
local tokens = nil
if rate > 0 and batch > 0 then
  tokens = bucket_tokens(KEYS[11], now, rate, burst)
  batch = math.min(batch, math.floor(tokens))
end

-- 1. Leases whose worker stopped renewing them: the attempt counts; run again or die.
local expired = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now, 'LIMIT', 0, tonumber(ARGV[4]))
for _, id in ipairs(expired) do
  redis.call('ZREM', KEYS[3], id)
  local a = tonumber(redis.call('HGET', KEYS[5], id) or '0')
  redis.call('HSET', KEYS[6], id, string.format('lease expired: the worker running attempt %d was lost', a))
  if a >= max_attempts then
    redis.call('ZADD', KEYS[7], now, id)
  else
    redis.call('LPUSH', KEYS[1], id)
  end
end

-- 2. Scheduled jobs that fell due, a bounded chunk per call whatever the backlog.
local due = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, tonumber(ARGV[5]))
if #due > 0 then
  redis.call('RPUSH', KEYS[1], unpack(due))
  redis.call('ZREM', KEYS[2], unpack(due))
end

-- 3. Lease a batch: ids stay in Redis (running, scored by lease deadline) until acknowledged.
local out = {#expired, -1, now, 0, -1, 0}
local ids = false
local live = 0
if batch > 0 then ids = redis.call('LPOP', KEYS[1], batch) end
local deadline = now + lease
-- As text once: a Lua number passed to redis.call is formatted as a float ('%.17g' through
-- printf in Redis 7.0) every time.
local deadline_s = string.format('%d', deadline)
if ids then
  local vals = redis.call('HMGET', KEYS[4], unpack(ids))
  local revoked = {}
  if redis.call('EXISTS', KEYS[12]) == 1 then
    local scores = redis.call('ZMSCORE', KEYS[12], unpack(ids))
    for i, id in ipairs(ids) do
      if vals[i] and scores[i] then
        vals[i] = false
        revoked[i] = true
        redis.call('ZADD', KEYS[7], now, id)
        redis.call('HSET', KEYS[6], id, 'revoked: not run again')
        redis.call('ZREM', KEYS[12], id)
      end
    end
  end
  for i = 1, #ids do
    if vals[i] then live = live + 1 end
  end
  local token = 0
  if live > 0 then token = redis.call('INCRBY', KEYS[9], live) - live end
  local zargs, largs = {}, {}
  for i, id in ipairs(ids) do
    local v = vals[i]
    if v then
      local a = redis.call('HINCRBY', KEYS[5], id, 1)
      token = token + 1
      zargs[#zargs + 1] = deadline_s
      zargs[#zargs + 1] = id
      largs[#largs + 1] = id
      largs[#largs + 1] = string.format('%d', token)
      out[#out + 1] = id
      out[#out + 1] = a
      out[#out + 1] = token
      out[#out + 1] = v
    elseif not revoked[i] then
      redis.call('HDEL', KEYS[5], id)
      redis.call('HDEL', KEYS[8], id)
    end
  end
  if #zargs > 0 then
    redis.call('ZADD', KEYS[3], unpack(zargs))
    redis.call('HSET', KEYS[8], unpack(largs))
  end
end

-- 4. Room left and nothing pending: lease raw messages from the foreign lists.
local room = batch - (ids and #ids or 0)
if room > 0 and #KEYS > 12 then
  local msgs = {}
  for k = 13, #KEYS do
    local got = redis.pcall('RPOP', KEYS[k], room - #msgs)
    if type(got) == 'table' and not got.err then
      for _, m in ipairs(got) do msgs[#msgs + 1] = m end
      if #msgs >= room then break end
    end
  end
  local n = #msgs
  if n > 0 then
    local token = redis.call('INCRBY', KEYS[9], n) - n
    local header = string.format('%d|', now)
    local prefix = ARGV[8]
    local jargs, aargs, zargs, largs = {}, {}, {}, {}
    for i, m in ipairs(msgs) do
      token = token + 1
      local tok = string.format('%d', token)
      local id = prefix .. string.format('%d', i)
      local stored = header .. m
      jargs[#jargs + 1] = id
      jargs[#jargs + 1] = stored
      aargs[#aargs + 1] = id
      aargs[#aargs + 1] = '1'
      zargs[#zargs + 1] = deadline_s
      zargs[#zargs + 1] = id
      largs[#largs + 1] = id
      largs[#largs + 1] = tok
      out[#out + 1] = id
      out[#out + 1] = 1
      out[#out + 1] = token
      out[#out + 1] = stored
    end
    redis.call('HSET', KEYS[4], unpack(jargs))
    redis.call('HSET', KEYS[5], unpack(aargs))
    redis.call('ZADD', KEYS[3], unpack(zargs))
    redis.call('HSET', KEYS[8], unpack(largs))
    live = live + n
    out[6] = n
  end
end
local nd = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
if nd[2] then out[2] = tonumber(nd[2]) end
local waiting = not paused and redis.call('LLEN', KEYS[1]) > 0
if not paused and not waiting then
  for k = 13, #KEYS do
    local len = redis.pcall('LLEN', KEYS[k])
    if type(len) == 'number' and len > 0 then
      waiting = true
      break
    end
  end
end
if tokens then
  tokens = tokens - live
  bucket_store(KEYS[11], now, rate, burst, tokens)
  local want = math.min(burst, tonumber(ARGV[1]))
  if waiting and tokens < want then
    out[5] = now + math.ceil((want - tokens) / rate)
    waiting = false
  end
end
if waiting then out[4] = 1 end
return out
