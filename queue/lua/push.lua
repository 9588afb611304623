-- How a job is stored: these two functions, up to the line that ends them, are also the prelude of
-- other crates' scripts that enqueue as part of a larger atomic write (the tracking crate's
-- page-view batch, through `queue::push_lib()`); this file stays whole for foreign
-- producers that load it as it is.
-- queue_entry(at, payload): the jobs-hash value, `<epoch ms waiting since>|<payload JSON>`.
-- queue_push(jobs, pending, scheduled, id, payload, at, now): store one job; it waits in the
-- scheduled ZSET when `at` is later than `now`, else it is ready at the end of the pending LIST.
-- Neither publishes: the caller tells the queue's notify channel once per script.
local function queue_entry(at, payload)
  return string.format('%d|', at) .. payload
end
local function queue_push(jobs, pending, scheduled, id, payload, at, now)
  if at > now then
    redis.call('HSET', jobs, id, queue_entry(at, payload))
    redis.call('ZADD', scheduled, at, id)
  else
    redis.call('HSET', jobs, id, queue_entry(now, payload))
    redis.call('RPUSH', pending, id)
  end
end
-- end of push_lib
-- Push a batch of jobs. KEYS: 1 pending, 2 scheduled, 3 jobs, 4 done, 5 dead, 6.. uniqueness keys.
-- ARGV: 1 notify channel ("" = none), 2 count, then 5 per job:
--   id, payload, due ("" = now, "+ms" = after a delay, "ms" = at epoch ms), unique key index into KEYS
--   (0 = none; positive: the key holds for its ttl; negative: only while the job it names has not
--   ended), unique ttl ms.
-- Returns, per job, {id, 1} when stored or {existing id, 0} when its uniqueness key dropped it.
if redis.call('TYPE', KEYS[4]).ok == 'string' then
  return redis.error_reply('push.lua: KEYS[4] must be the queue\'s done set (the layout changed: 4 done, 5 dead, 6.. uniqueness keys)')
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local n = tonumber(ARGV[2])
local hset, rpush, out = {}, {}, {}
-- Ids stored by this call (ready ones reach the jobs hash only at the end).
local stored = {}
-- Whether job `j` has not ended: stored, and neither done nor dead (an erased, discarded or
-- forgotten job has no payload left).
local function live(j)
  if stored[j] then return true end
  return redis.call('HEXISTS', KEYS[3], j) == 1
    and not redis.call('ZSCORE', KEYS[4], j)
    and not redis.call('ZSCORE', KEYS[5], j)
end
for i = 0, n - 1 do
  local b = 3 + i * 5
  local id, payload, due, uk = ARGV[b], ARGV[b + 1], ARGV[b + 2], tonumber(ARGV[b + 3])
  local until_end = uk < 0
  if until_end then uk = -uk end
  local prev = false
  if uk > 0 then
    prev = redis.call('SET', KEYS[uk], id, 'NX', 'GET', 'PX', ARGV[b + 4])
    if prev and until_end and not live(prev) then
      -- The job the key names has ended: the key is this job's now.
      redis.call('SET', KEYS[uk], id, 'PX', ARGV[b + 4])
      prev = false
    end
  end
  if prev then
    out[#out + 1] = prev
    out[#out + 1] = 0
  else
    stored[id] = true
    local at = now
    if due ~= '' then
      if string.sub(due, 1, 1) == '+' then at = now + tonumber(string.sub(due, 2)) else at = tonumber(due) end
    end
    if at > now then
      queue_push(KEYS[3], KEYS[1], KEYS[2], id, payload, at, now)
    else
      -- Ready jobs are stored together below: one HSET and one RPUSH for the whole batch.
      hset[#hset + 1] = id
      hset[#hset + 1] = queue_entry(now, payload)
      rpush[#rpush + 1] = id
    end
    out[#out + 1] = id
    out[#out + 1] = 1
  end
end
if #rpush > 0 then
  redis.call('HSET', KEYS[3], unpack(hset))
  redis.call('RPUSH', KEYS[1], unpack(rpush))
end
if ARGV[1] ~= '' then redis.call('PUBLISH', ARGV[1], '1') end
return out
