-- Shared prelude: how a job is stored, for push.lua and for other crates' scripts that enqueue
-- as part of a larger atomic write (the tracking crate's page-view batch).
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
