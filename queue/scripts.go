package queue

import "github.com/redis/go-redis/v9"

// createScript stores the jobs of one submission and their index entries
// at once, or returns the record (idemRecord) an earlier submission with
// the same idempotency key stored. Out of memory fails the first write, so either
// every job is stored or none is.
//
// KEYS: idem, all, tenant, group, state:pending, deadline, job keys…
// ARGV: use idem (1|0), idem TTL ms, idempotency record JSON, has group (1|0), tenant,
// then (id, json, deadline ms) per job.
var createScript = redis.NewScript(`
if ARGV[1] == '1' then
  local v = redis.call('GET', KEYS[1])
  if v then return v end
end
local n = #KEYS - 6
for i = 1, n do
  local b = 5 + (i - 1) * 3
  local id = ARGV[b + 1]
  redis.call('HSET', KEYS[6 + i], 'json', ARGV[b + 2], 'state', 'pending', 'v', '1', 'rel', '0', 'resv', '0', 'tenant', ARGV[5])
  redis.call('ZADD', KEYS[2], 0, id)
  redis.call('ZADD', KEYS[3], 0, id)
  if ARGV[4] == '1' then redis.call('ZADD', KEYS[4], 0, id) end
  redis.call('ZADD', KEYS[5], 0, id)
  redis.call('ZADD', KEYS[6], ARGV[b + 3], id)
end
if ARGV[1] == '1' then redis.call('SET', KEYS[1], ARGV[3], 'PX', ARGV[2]) end
return false
`)

// writeScript replaces a job record if its version is still the one the
// caller read (compare-and-set), moves it between state indexes and keeps
// the release and deadline schedules in step. With a fencing token it also
// requires that token to be the current leader's.
//
// KEYS: job, fence, release, deadline, state keys in greenq.States order.
// ARGV: expected version, json, new state index (1-based), old state index,
// id, release score (empty = none), deadline score (empty = none), fencing token
// (empty = none), rel, resv, new state name.
// Returns 1 written, 0 version changed, -1 fenced, -2 no such job.
var writeScript = redis.NewScript(`
if ARGV[8] ~= '' and redis.call('GET', KEYS[2]) ~= ARGV[8] then return -1 end
local v = redis.call('HGET', KEYS[1], 'v')
if not v then return -2 end
if v ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'json', ARGV[2], 'state', ARGV[11], 'v', tostring(tonumber(v) + 1), 'rel', ARGV[9], 'resv', ARGV[10])
local ni, oi = tonumber(ARGV[3]), tonumber(ARGV[4])
if ni ~= oi then redis.call('ZREM', KEYS[4 + oi], ARGV[5]) end
redis.call('ZADD', KEYS[4 + ni], 0, ARGV[5])
if ARGV[6] == '' then redis.call('ZREM', KEYS[3], ARGV[5]) else redis.call('ZADD', KEYS[3], ARGV[6], ARGV[5]) end
if ARGV[7] == '' then redis.call('ZREM', KEYS[4], ARGV[5]) else redis.call('ZADD', KEYS[4], ARGV[7], ARGV[5]) end
return 1
`)

// Heartbeat expiries are kept on Redis's clock (TIME), the one clock every
// server and worker shares, so a worker whose own clock is off is neither
// dropped early nor kept alive after it stops.

// heartbeatScript records worker ARGV[1] (JSON ARGV[2]) as live for
// ARGV[3] ms from now on Redis's clock, and as seen (KEYS[3], which outlives
// the heartbeat: see Store.largestWorkers).
var heartbeatScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('HSET', KEYS[3], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[2], now + tonumber(ARGV[3]), ARGV[1])
return now
`)

// workerLiveScript returns 1 when worker ARGV[1]'s heartbeat expires after
// now on Redis's clock.
var workerLiveScript = redis.NewScript(`
local exp = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not exp then return 0 end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if tonumber(exp) > now then return 1 end
return 0
`)

// workersScript drops workers whose heartbeat expired by now on Redis's
// clock and returns the JSON of the live ones.
var workersScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local dead = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now)
for _, id in ipairs(dead) do redis.call('HDEL', KEYS[1], id) end
if #dead > 0 then redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now) end
local live = redis.call('ZRANGEBYSCORE', KEYS[2], '(' .. now, '+inf')
if #live == 0 then return {} end
return redis.call('HMGET', KEYS[1], unpack(live))
`)
