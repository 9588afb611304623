-- Adopt raw messages taken from foreign lists on another server (a Celery broker that is not
-- this Redis) as jobs. Each message's job id is 'x' .. sha1(message), so adopting one again
-- (after a crash between adopting it and dropping it there) finds its job and adds nothing, as
-- long as the job is kept. (Foreign lists on this Redis are leased from directly: fetch.lua.)
-- KEYS: 1 pending, 2 jobs.
-- ARGV: 1 notify channel, 2.. messages.
-- Returns the number of messages adopted.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local header = string.format('%d|', now)
local ids = {}
for i = 2, #ARGV do
  local m = ARGV[i]
  local id = 'x' .. redis.sha1hex(m)
  if redis.call('HSETNX', KEYS[2], id, header .. m) == 1 then
    ids[#ids + 1] = id
  end
end
if #ids > 0 then
  redis.call('RPUSH', KEYS[1], unpack(ids))
  if ARGV[1] ~= '' then redis.call('PUBLISH', ARGV[1], '1') end
end
return #ids
