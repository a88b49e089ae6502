-- Reserve a batch of leads' sends atomically, and hold each lead's answer.
--
-- For each ask of a lead: on the first candidate day where some resource has
-- room, take the least-used one (ties to the first listed, i.e. the smallest
-- resource_id) and increment its counter. The lead's answer, with the plan it
-- was decided with, is stored under its hold key and returned unchanged when
-- the same event of the same client asks again: a redelivery counts nothing
-- and gets the first answer, whatever changed in between.
-- The same rules in Python: allocator/quota/rules.py choose_on_day (run by
-- allocator/quota/memory.py), and quota/feedback.py for health and the sticky sender. The key names are built by the client
-- (allocator/quota/keys.py) and declared in KEYS: the script touches no other
-- key, which Redis Cluster requires (every key of one call is in one slot;
-- redis_store.py splits a batch per slot).
--
-- KEYS = every counter and hold key of the call, each once.
-- ARGV[1] = the batch as JSON, a list of leads, each
--   [hold key index, plan, hold expiry, [ask, ...], lead], lead being 0 or
--   [sends index key, suppression key, allocation_id, event_id, scored_at,
--    the index's expiry]
--   (round 2, section 10: the lead's index of reserved sends and its suppression),
--   an ask being
--   [[day, ...], [resource_id, ...], least_loaded (1) or least_used (0), extra],
--   extra 0 or [channel, gap, jitter, sticky days, sticky require (1/0),
--   health key per resource],
--   one day per candidate day, in order (indexes into KEYS):
--   [counter per resource, cap per resource (-1: none), expiry,
--    warm: 0 or per resource 1 if its cap is its warm-up's,
--    week: 0 or per resource 0 or [weekly limit, 13 counters from 6 days before to 6 after],
--    pool: 0 or per resource 0 or [pool counter, day limit, week limit (-1: none), 0 or 13 counters],
--    lead: 0 or [counter, limit], domain: 0 or [counter, limit],
--    paced: how many sends of one resource pacing lets out that day (-1: not paced),
--    at: the slot's instant (Unix seconds), the day as YYYY-MM-DD,
--    pace: 0 or per resource its pacing counter (k; never refunded)]
-- ARGV[2] = "1" to write an answer found held back unchanged (same value, same
--   expiry). Only when the client WAITs for replicas after the call: WAIT
--   waits for this connection's last write, and a call that only read held
--   answers would otherwise wait for nothing, although the write that made
--   them (perhaps in an earlier, failed attempt) may not be on a replica yet.
-- (An ask is the same for every lead of a client, channel and day, so the
-- client encodes it once per call; one JSON argument instead of one argument
-- per lead and key: argument encoding cost the client more than Redis spent
-- running the script.)
-- Returns, per lead, the held answer as JSON: [plan, [pick, ...], [blocked, ...], [k, ...]],
-- a pick being "<step>:<resource_id>" or "-" (exhausted), a blocked being what
-- blocked the ask's first day, "<code>:<resources it blocked>:<resources>", or
-- "" (none), a k the taken resource's count that day before this send (-1:
-- exhausted; pacing spaces sends by it). An empty list encodes as {}.
-- The rules, in the order allocator/quota/rules.py checks them: the lead's and
-- the recipient domain's caps; per resource its cap of the day, its rolling
-- weeks, its pool's day and weeks; then the rotation's choice.
local batch = cjson.decode(ARGV[1])
local rewrite_found = ARGV[2] == '1'
-- Ties between reasons go to the first listed (allocator/reasons.py WHY_ORDER).
local order = {
  deferred_full = 1, deferred_warmup = 2, deferred_weekly = 3, deferred_pool = 4,
  deferred_health = 5, moved_window = 8
}

local function count(index)
  return tonumber(redis.call('GET', KEYS[index]) or '0')
end

-- One more send in the middle of 13 days would put a rolling week over limit.
local function week_full(indexes, limit)
  local keys = {}
  for i = 1, 13 do
    keys[i] = KEYS[indexes[i]]
  end
  local values = redis.call('MGET', unpack(keys))
  local c = {}
  for i = 1, 13 do
    c[i] = tonumber(values[i] or '0')
  end
  local window = 0
  for i = 1, 7 do
    window = window + c[i]
  end
  local worst = window
  for start = 2, 7 do
    window = window + c[start + 6] - c[start - 1]
    if window > worst then
      worst = window
    end
  end
  return worst >= limit
end

-- Health (section 10): a paused resource takes nothing, a cooling one nothing before its till.
local function unhealthy(health, at)
  if not health then
    return false
  end
  return health[1] == 'paused' or (health[1] == 'cooling' and health[2] > at)
end

local function resource_blocked(day, j, used, health)
  if unhealthy(health, day[10]) then
    return 'deferred_health'
  end
  local cap = day[2][j]
  if cap >= 0 and used >= cap then
    if day[4] ~= 0 and day[4][j] == 1 then
      return 'deferred_warmup'
    end
    return 'deferred_full'
  end
  local week = day[5] ~= 0 and day[5][j] or 0
  if week ~= 0 and week_full(week[2], week[1]) then
    return 'deferred_weekly'
  end
  local pool = day[6] ~= 0 and day[6][j] or 0
  if pool ~= 0 then
    local pooled = count(pool[1])
    if pool[2] >= 0 and pooled >= pool[2] then
      return 'deferred_pool'
    end
    if pool[3] >= 0 and week_full(pool[4], pool[3]) then
      return 'deferred_pool'
    end
  end
  local room = day[9]
  if room >= 0 and count(day[12][j]) >= room then
    return 'moved_window' -- paced past the day's end
  end
  return nil
end

-- The resource taken on this day (its index), or nil and what blocked the day.
-- `healths`: per resource its decoded health or false; `sticky`: the resource_id
-- the lead last had on the channel (or nil), `require`: the day waits for it.
local function choose(day, n, least_loaded, healths, ids, sticky, require)
  local lead, domain = day[7], day[8]
  if lead ~= 0 and count(lead[1]) >= lead[2] then
    return nil, 'deferred_lead_limit:0:' .. n
  end
  if domain ~= 0 and count(domain[1]) >= domain[2] then
    return nil, 'deferred_domain_limit:0:' .. n
  end
  local keys = {}
  for j = 1, n do
    keys[j] = KEYS[day[1][j]]
  end
  local counts = redis.call('MGET', unpack(keys))
  local best, best_count, best_cap = nil, 0, -1
  local tally = {}
  local sticky_at, sticky_count, sticky_why = nil, 0, 'deferred_health'
  for j = 1, n do
    local c = tonumber(counts[j] or '0')
    local why = resource_blocked(day, j, c, healths[j])
    if sticky and ids[j] == sticky then
      if why then
        sticky_why = why
      else
        sticky_at, sticky_count = j, c
      end
    end
    if why then
      tally[why] = (tally[why] or 0) + 1
    else
      local better = best == nil
      if not better then
        if least_loaded then
          -- c / cap < best_count / best_cap, exactly; an unlimited resource is empty
          local mine_used, mine_cap = c, day[2][j]
          if mine_cap < 0 then mine_used, mine_cap = 0, 1 end
          local their_used, their_cap = best_count, best_cap
          if their_cap < 0 then their_used, their_cap = 0, 1 end
          better = mine_used * their_cap < their_used * mine_cap
        else
          better = c < best_count
        end
      end
      if better then
        best, best_count, best_cap = j, c, day[2][j]
      end
    end
  end
  if sticky then
    if sticky_at then
      best, best_count = sticky_at, sticky_count
    elseif require then
      return nil, sticky_why .. ':1:' .. n
    end
  end
  if best then
    if day[9] >= 0 then
      return best, nil, count(day[12][best]) -- k: the paced sends before this one
    end
    return best, nil, best_count
  end
  local top, top_n = nil, 0
  for why, k in pairs(tally) do
    if k > top_n or (k == top_n and order[why] < order[top]) then
      top, top_n = why, k
    end
  end
  return nil, top .. ':' .. top_n .. ':' .. n
end

-- The resource the lead last had on `channel` within `days` of `at`
-- (quota/feedback.py sticky_resource): latest send_at, ties to the smaller id.
local function sticky_resource(index, channel, at, days)
  local suffix = '|' .. channel
  local best_at, best_id = nil, nil
  for field, send in pairs(index) do
    if string.sub(field, -#suffix) == suffix and send[6] ~= 'c' and send[6] ~= 'x'
        and math.abs(send[3] - at) <= days * 86400 then
      if best_at == nil or send[3] > best_at or (send[3] == best_at and send[2] < best_id) then
        best_at, best_id = send[3], send[2]
      end
    end
  end
  return best_id
end

local function suppressed(lead)
  local found = redis.call('GET', KEYS[lead[2]])
  if not found then
    return nil
  end
  local s = cjson.decode(found) -- [kind, since, till]
  if s[2] <= lead[5] and (s[3] == -1 or lead[5] < s[3]) then
    return s[1] .. ':' .. s[2] .. ':' .. s[3]
  end
  return nil
end

local out = {}
for i, lead in ipairs(batch) do
  local held_key = KEYS[lead[1]]
  local held = redis.call('GET', held_key)
  local info = lead[5]
  if not held then
    local picks, blocked, ks = {}, {}, {}
    local stopped = info ~= 0 and suppressed(info) or nil
    local index = nil
    if info ~= 0 and not stopped then
      index = {}
      local raw = redis.call('HGETALL', KEYS[info[1]])
      for f = 1, #raw, 2 do
        index[raw[f]] = cjson.decode(raw[f + 1])
      end
    end
    for a, ask in ipairs(lead[4]) do
      local days, ids, least_loaded, extra = ask[1], ask[2], ask[3] == 1, ask[4]
      local pick, first, k = '-', '', -1
      local healths = {}
      if extra ~= 0 and #ids > 0 then
        local hkeys = {}
        for j = 1, #ids do
          hkeys[j] = KEYS[extra[6][j]]
        end
        local raw = redis.call('MGET', unpack(hkeys))
        for j = 1, #ids do
          healths[j] = raw[j] and cjson.decode(raw[j]) or false
        end
      end
      for d, day in ipairs(stopped and {} or days) do
        local sticky = nil
        if index and extra ~= 0 and extra[4] > 0 then
          sticky = sticky_resource(index, extra[1], day[10], extra[4])
        end
        local best, why, used = choose(
          day, #ids, least_loaded, healths, ids, sticky, extra ~= 0 and extra[5] == 1)
        if best then
          local expiry = day[3]
          local counted = {KEYS[day[1][best]]}
          local pool = day[6] ~= 0 and day[6][best] or 0
          if pool ~= 0 then counted[#counted + 1] = KEYS[pool[1]] end
          if day[7] ~= 0 then counted[#counted + 1] = KEYS[day[7][1]] end
          if day[8] ~= 0 then counted[#counted + 1] = KEYS[day[8][1]] end
          for _, key in ipairs(counted) do
            redis.call('INCR', key)
            redis.call('EXPIREAT', key, expiry)
          end
          if day[9] >= 0 then
            local pace = KEYS[day[12][best]]
            redis.call('INCR', pace)
            redis.call('EXPIREAT', pace, expiry)
          end
          pick = (d - 1) .. ':' .. ids[best]
          k = used
          if index and extra ~= 0 then
            local send = {info[4], ids[best], day[10] + used * extra[2] + extra[3], day[11],
                          counted, 'r'}
            local field = info[3] .. '|' .. extra[1]
            index[field] = send
            redis.call('HSET', KEYS[info[1]], field, cjson.encode(send))
          end
          break
        end
        if d == 1 then
          first = why
        end
      end
      picks[a] = pick
      blocked[a] = first
      ks[a] = k
    end
    if index and next(index) ~= nil then
      -- The index lives until the latest expiry any of the lead's events gave
      -- it (EXPIRETIME: -1 without an expiry, -2 when the key is not there).
      local till = redis.call('EXPIRETIME', KEYS[info[1]])
      if till == -1 or (till >= 0 and till < tonumber(info[6])) then
        redis.call('EXPIREAT', KEYS[info[1]], info[6])
      end
    end
    held = cjson.encode({lead[2], picks, blocked, ks, stopped or ''})
    redis.call('SET', held_key, held, 'EXAT', lead[3])
  elseif rewrite_found then
    redis.call('SET', held_key, held, 'KEEPTTL')
  end
  out[i] = held
end
return out
