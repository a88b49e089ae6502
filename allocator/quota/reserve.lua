-- Reserve sends atomically: for each request, on the first candidate day where
-- some resource has room, take the least-used one (ties to the first listed,
-- i.e. the smallest resource_id) and increment its counter. Idempotent per
-- request: the outcome is stored under the request's reservation key and
-- returned unchanged when the same (event, channel) asks again.
-- The same rule in Python: allocator/quota/base.py choose_resource.
--
-- KEYS, per request: reservation key, then days*resources counter keys (day-major).
-- ARGV[1] = number of requests; then per request:
--   days, resources, reservation expiry (unix s),
--   days x counter expiry (unix s), resources x limit (-1 = unlimited),
--   resources x resource_id
-- Returns, per request: "<step>:<resource_id>" or "-" (exhausted).
local out = {}
local k = 1
local a = 2
for i = 1, tonumber(ARGV[1]) do
  local held_key = KEYS[k]
  local days = tonumber(ARGV[a])
  local n = tonumber(ARGV[a + 1])
  local held_expiry = ARGV[a + 2]
  local expiry_at = a + 3
  local limit_at = expiry_at + days
  local id_at = limit_at + n
  local held = redis.call('GET', held_key)
  if held then
    out[i] = held
  else
    local result = '-'
    for d = 1, days do
      local first = k + 1 + (d - 1) * n
      local counts = redis.call('MGET', unpack(KEYS, first, first + n - 1))
      local best, best_count = nil, nil
      for j = 1, n do
        local c = tonumber(counts[j] or '0')
        local limit = tonumber(ARGV[limit_at + j - 1])
        if (limit < 0 or c < limit) and (best == nil or c < best_count) then
          best, best_count = j, c
        end
      end
      if best then
        local key = KEYS[first + best - 1]
        redis.call('INCR', key)
        redis.call('EXPIREAT', key, ARGV[expiry_at + d - 1])
        result = (d - 1) .. ':' .. ARGV[id_at + best - 1]
        break
      end
    end
    redis.call('SET', held_key, result, 'EXAT', held_expiry)
    out[i] = result
  end
  k = k + 1 + days * n
  a = id_at + n
end
return out
