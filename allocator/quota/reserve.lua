-- Reserve a batch of leads' sends atomically, and hold each lead's answer.
--
-- For each ask of a lead: on the first candidate day where some resource has
-- room, take the least-used one (ties to the first listed, i.e. the smallest
-- resource_id) and increment its counter. The lead's answer, with the plan it
-- was decided with, is stored under its hold key and returned unchanged when
-- the same event of the same client asks again: a redelivery counts nothing
-- and gets the first answer, whatever changed in between.
-- The same rule in Python: allocator/quota/base.py choose_resource and
-- allocator/quota/memory.py; the same counter key format: base.py counter_key.
-- The hold key (<prefix>allocator:held:<hold key>) is only built here.
--
-- ARGV[1] = key prefix; ARGV[2] = the batch as JSON, a list of leads, each
--   [hold_key, plan, hold expiry, [ask, ...]], an ask being
--   [channel, [day, ...], [counter expiry, ...], [resource_id, ...], [limit or -1, ...]]
-- (an ask is the same for every lead of a client, channel and day, so the
-- client caches its JSON; see redis_store.py)
-- (One JSON argument instead of one argument per key: encoding thousands of
-- arguments per call cost the client more than Redis spent running the script.)
-- Returns, per lead, the held answer as JSON: [plan, [pick, ...]], a pick being
-- "<step>:<resource_id>" or "-" (exhausted). An empty pick list encodes as {}.
local prefix = ARGV[1]
local batch = cjson.decode(ARGV[2])
local out = {}
for i, lead in ipairs(batch) do
  local held_key = prefix .. 'allocator:held:' .. lead[1]
  local held = redis.call('GET', held_key)
  if not held then
    local picks = {}
    for a, ask in ipairs(lead[4]) do
      local channel, days, expiries, ids, limits = ask[1], ask[2], ask[3], ask[4], ask[5]
      local pick = '-'
      local n = #ids
      for d, day in ipairs(days) do
        local keys = {}
        for j = 1, n do
          keys[j] = prefix .. 'ratelimit:' .. channel .. ':' .. ids[j] .. ':daily:' .. day
        end
        local counts = redis.call('MGET', unpack(keys))
        local best, best_count = nil, nil
        for j = 1, n do
          local c = tonumber(counts[j] or '0')
          local limit = limits[j]
          if (limit < 0 or c < limit) and (best == nil or c < best_count) then
            best, best_count = j, c
          end
        end
        if best then
          redis.call('INCR', keys[best])
          redis.call('EXPIREAT', keys[best], expiries[d])
          pick = (d - 1) .. ':' .. ids[best]
          break
        end
      end
      picks[a] = pick
    end
    held = cjson.encode({lead[2], picks})
    redis.call('SET', held_key, held, 'EXAT', lead[3])
  end
  out[i] = held
end
return out
