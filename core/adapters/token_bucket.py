"""The token bucket every rate limit runs: one Lua script, atomic on one server and on a Redis Cluster.

The script refills the bucket for the time since its last use, takes ``cost`` tokens when there
are enough, and stores the rest, all in one step, so any number of processes share a bucket
exactly. A ``cost`` of 0 only reads the bucket. Time is Redis's own clock (``TIME``) unless the
caller passes one. The script's one key is the bucket, so on a Redis Cluster it runs on the node
of that key's slot. Users' rate limits (``core.ratelimit``) and staff's action throttle
(``core.audit.throttle``) both run it.
"""

from __future__ import annotations

TOKEN_BUCKET = """
local key = KEYS[1]
local rate = tonumber(ARGV[1])      -- tokens per second
local burst = tonumber(ARGV[2])     -- bucket size
local cost = tonumber(ARGV[3])      -- 0 reads without taking
local now = tonumber(ARGV[4])       -- milliseconds; negative means use Redis's clock
if now < 0 then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local state = redis.call('HMGET', key, 'tokens', 'ts')
local tokens = tonumber(state[1])
local ts = tonumber(state[2])
local fresh = 0
if tokens == nil or ts == nil then
  tokens = burst
  ts = now
  fresh = 1
end
if now > ts then
  tokens = math.min(burst, tokens + (now - ts) * rate / 1000)
  ts = now
end
local allowed = 0
if cost > 0 and tokens >= cost then
  tokens = tokens - cost
  allowed = 1
end
local retry_ms = 0
if allowed == 0 and cost > 0 then
  retry_ms = math.ceil((cost - tokens) * 1000 / rate)
end
if cost > 0 then
  redis.call('HSET', key, 'tokens', string.format('%.6f', tokens), 'ts', ts)
  redis.call('PEXPIRE', key, math.ceil(burst * 1000 / rate) + 60000)
end
return {allowed, string.format('%.6f', tokens), retry_ms, ts, fresh}
"""
