-- Reserve sends atomically: for each request, on the first candidate day where
-- some resource has room, take the least-used one (ties to the first listed,
-- i.e. the smallest resource_id) and increment its counter. Idempotent per
-- request: the outcome is stored under the request's reservation key and
-- returned unchanged when the same (event, channel) asks again.
-- The same rule in Python: allocator/quota/base.py choose_resource; the same
-- counter key format: base.py counter_key. The reservation key
-- (<prefix>allocator:reservation:<event_id>:<channel>) is only built here.
--
-- ARGV[1] = key prefix; ARGV[2] = the batch as JSON, a list of requests, each
--   [event_id, [channel, [day, ...], [counter expiry, ...], reservation expiry,
--               [resource_id, ...], [limit or -1, ...]]]
-- (the inner list is the same for every lead of a client and day, so the
-- client caches its JSON; see redis_store.py)
-- (One JSON argument instead of one argument per key: encoding thousands of
-- arguments per call cost the client more than Redis spent running the script.)
-- Returns, per request: "<step>:<resource_id>" or "-" (exhausted).
local prefix = ARGV[1]
local batch = cjson.decode(ARGV[2])
local out = {}
for i, item in ipairs(batch) do
  local spec = item[2]
  local req = {e = item[1], c = spec[1], d = spec[2], x = spec[3], h = spec[4],
               r = spec[5], l = spec[6]}
  local held_key = prefix .. 'allocator:reservation:' .. req.e .. ':' .. req.c
  local held = redis.call('GET', held_key)
  if held then
    out[i] = held
  else
    local result = '-'
    local n = #req.r
    for d, day in ipairs(req.d) do
      local keys = {}
      for j = 1, n do
        keys[j] = prefix .. 'ratelimit:' .. req.c .. ':' .. req.r[j] .. ':daily:' .. day
      end
      local counts = redis.call('MGET', unpack(keys))
      local best, best_count = nil, nil
      for j = 1, n do
        local c = tonumber(counts[j] or '0')
        local limit = req.l[j]
        if (limit < 0 or c < limit) and (best == nil or c < best_count) then
          best, best_count = j, c
        end
      end
      if best then
        redis.call('INCR', keys[best])
        redis.call('EXPIREAT', keys[best], req.x[d])
        result = (d - 1) .. ':' .. req.r[best]
        break
      end
    end
    redis.call('SET', held_key, result, 'EXAT', req.h)
    out[i] = result
  end
end
return out
