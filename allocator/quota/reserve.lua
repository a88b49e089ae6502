-- Reserve a batch of leads' sends atomically, and hold each lead's answer.
--
-- For each ask of a lead: on the first candidate day where some resource has
-- room, take the least-used one (ties to the first listed, i.e. the smallest
-- resource_id) and increment its counter. The lead's answer, with the plan it
-- was decided with, is stored under its hold key and returned unchanged when
-- the same event of the same client asks again: a redelivery counts nothing
-- and gets the first answer, whatever changed in between.
-- The same rule in Python: allocator/quota/base.py choose_resource and
-- allocator/quota/memory.py. The key names are built by the client
-- (allocator/quota/keys.py) and declared in KEYS: the script touches no other
-- key, which Redis Cluster requires (every key of one call is in one slot;
-- redis_store.py splits a batch per slot).
--
-- KEYS = every counter and hold key of the call, each once.
-- ARGV[1] = the batch as JSON, a list of leads, each
--   [hold key index, plan, hold expiry, [ask, ...]], an ask being
--   [[[counter key index, ...] per day], [counter expiry per day], [resource_id, ...], [limit or -1, ...]]
--   (indexes into KEYS; per day one counter index per resource, in the order of the ids)
-- ARGV[2] = "1" to write an answer found held back unchanged (same value, same
--   expiry). Only when the client WAITs for replicas after the call: WAIT
--   waits for this connection's last write, and a call that only read held
--   answers would otherwise wait for nothing, although the write that made
--   them (perhaps in an earlier, failed attempt) may not be on a replica yet.
-- (An ask is the same for every lead of a client, channel and day, so the
-- client encodes it once per call; one JSON argument instead of one argument
-- per lead and key: argument encoding cost the client more than Redis spent
-- running the script.)
-- Returns, per lead, the held answer as JSON: [plan, [pick, ...]], a pick being
-- "<step>:<resource_id>" or "-" (exhausted). An empty pick list encodes as {}.
local batch = cjson.decode(ARGV[1])
local rewrite_found = ARGV[2] == '1'
local out = {}
for i, lead in ipairs(batch) do
  local held_key = KEYS[lead[1]]
  local held = redis.call('GET', held_key)
  if not held then
    local picks = {}
    for a, ask in ipairs(lead[4]) do
      local day_keys, expiries, ids, limits = ask[1], ask[2], ask[3], ask[4]
      local pick = '-'
      local n = #ids
      for d, indexes in ipairs(day_keys) do
        local keys = {}
        for j = 1, n do
          keys[j] = KEYS[indexes[j]]
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
  elseif rewrite_found then
    redis.call('SET', held_key, held, 'KEEPTTL')
  end
  out[i] = held
end
return out
