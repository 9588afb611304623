-- Adopt raw messages from foreign lists (e.g. Celery's) as jobs, atomically: a message is always
-- in a foreign list, the staging list, or this queue. Each message's job id is 'x' .. sha1(message),
-- so a message adopted twice is one job.
-- Messages already taken from a foreign list on another server (a Celery broker that is not this
-- Redis) come as arguments instead: adopting one again (after a crash between adopting it and
-- dropping it there) finds its job and adds nothing, as long as the job is kept.
-- KEYS: 1 pending, 2 jobs, 3 staging list, 4.. foreign lists in priority order (popped from the right).
-- ARGV: 1 max messages, 2 notify channel, 3.. messages given.
-- Returns the number of messages adopted.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local left = tonumber(ARGV[1])
local ids = {}
local function adopt(m)
  local id = 'x' .. redis.sha1hex(m)
  if redis.call('HSETNX', KEYS[2], id, string.format('%d|', now) .. m) == 1 then
    ids[#ids + 1] = id
  end
end
for i = 3, #ARGV do adopt(ARGV[i]) end
for k = 3, #KEYS do
  if left <= 0 then break end
  local msgs = redis.call('RPOP', KEYS[k], left)
  if msgs then
    for _, m in ipairs(msgs) do adopt(m) end
    left = left - #msgs
  end
end
if #ids > 0 then
  redis.call('RPUSH', KEYS[1], unpack(ids))
  if ARGV[2] ~= '' then redis.call('PUBLISH', ARGV[2], '1') end
end
return #ids
