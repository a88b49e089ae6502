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
-- KEYS = every key the call reads or writes (counters, holds, health, the leads'
--   indexes of sends and suppressions), each once.
-- ARGV[1] = the call as JSON, [shapes, refs, infos]:
--   shapes: what the asks of the call have in common, each
--   [[day, ...], [resource_id, ...], least_loaded (1) or least_used (0), extra,
--    [resource_id as the inside of a JSON string, ...]],
--   extra 0 or [channel, gap, jitter, sticky days, sticky require (1/0),
--   health key per resource],
--   one day per candidate day, in order (indexes into KEYS):
--   [counter per resource, cap per resource (-1: none), the counters' expiry (Unix ms, as text),
--    warm: 0 or per resource 1 if its cap is its warm-up's,
--    week: 0 or per resource 0 or [weekly limit, 13 counters from 6 days before to 6 after],
--    pool: 0 or per resource 0 or [pool counter, day limit, week limit (-1: none), 0 or 13 counters],
--    paced: how many sends of one resource pacing lets out that day (-1: not paced),
--    at: the slot's instant (Unix seconds), the day as YYYY-MM-DD,
--    pace: 0 or per resource its pacing counter (k; never refunded)];
--   refs: values the leads name by their place (hold expiries, cap limits);
--   infos: per lead that has a lead_id (round 2, section 10: the lead's index
--   of reserved sends and its suppression)
--   [sends index key, suppression key, allocation_id, event_id, scored_at,
--    the index's expiry].
-- ARGV[2] = "1" to write an answer found held back unchanged (same value, same
--   expiry). Only when the client WAITs for replicas after the call: WAIT
--   waits for this connection's last write, and a call that only read held
--   answers would otherwise wait for nothing, although the write that made
--   them (perhaps in an earlier, failed attempt) may not be on a replica yet.
-- ARGV[3] = the leads' plans as JSON strings (ASCII), one after the other,
--   each written into its lead's held answer as it is.
-- ARGV[4] = the leads: whole numbers, lead after lead, each a 4-byte
--   little-endian signed integer (one flat list: cjson decoded the same leads
--   as nested lists in three times the time, and as a flat list of text in
--   four times the time of struct.unpack), each
--   hold key (a KEYS index), hold expiry (Unix ms, a ref), length of its plan
--   in ARGV[3], its info (0: none), how many asks, then per ask
--   its shape, its lead cap's limit (a ref; 0: none), its recipient domain
--   cap's limit (a ref; 0: none), then per day of the shape its lead counter
--   if it has that cap and its domain counter if it has that one.
-- (The leads of a client share their resources, days and pacing, so the
-- client encodes a shape once per call and each lead names it with what is
-- its own, its caps: decoding the whole ask for every lead cost Redis more
-- than the rules did. A few arguments instead of some per lead: argument
-- encoding cost the client more than Redis spent running the script.)
-- Returns the leads' held answers as one JSON list, each
-- [plan, [pick, ...], [blocked, ...], [k, ...], suppressed],
-- a pick being "<step>:<resource_id>" or "-" (exhausted), a blocked being what
-- blocked the ask's first day, "<code>:<resources it blocked>:<resources>", or
-- "" (none), a k the taken resource's count that day before this send (-1:
-- exhausted; pacing spaces sends by it), suppressed "" or what stopped the lead.
-- An empty list is [] (or {} in answers cjson wrote, before this script).
-- The rules, in the order allocator/quota/rules.py checks them: the lead's and
-- the recipient domain's caps; per resource its cap of the day, its rolling
-- weeks, its pool's day and weeks; then the rotation's choice.
local call = cjson.decode(ARGV[1])
local shapes, refs, infos = call[1], call[2], call[3]
-- The leads' whole numbers (ARGV[4]), 4 bytes each: cjson read the same as
-- text in four times the time. struct.unpack returns them on Lua's stack,
-- which holds 8,000 values (LUAI_MAXCSTACK), so a long list is read 4,000
-- at a time. (Read at once, `leads` ends with one more value, the position
-- after the last, which nothing reads: the leads end at n_values.)
local leads, n_values = nil, #ARGV[4] / 4
do
  local packed, part = ARGV[4], 4000
  if n_values <= part then
    leads = {struct.unpack('<' .. string.rep('i4', n_values), packed)}
  else
    leads = {}
    local done, at = 0, 1
    while done < n_values do
      local k = math.min(part, n_values - done)
      local read = {struct.unpack('<' .. string.rep('i4', k), packed, at)}
      for c = 1, k do
        leads[done + c] = read[c]
      end
      done, at = done + k, read[k + 1]
    end
  end
end
local rewrite_found = ARGV[2] == '1'
-- Ties between reasons go to the first listed (allocator/reasons.py WHY_ORDER).
local order = {
  deferred_full = 1, deferred_warmup = 2, deferred_weekly = 3, deferred_pool = 4,
  deferred_health = 5, moved_window = 8
}
local huge = math.huge

-- Tables by KEYS index start with a slot for every index (false: nothing
-- yet), so that Lua keeps them as arrays: filled one new index at a time they
-- were hashed, and rehashed as they grew, which cost more than the rules.
local n_keys = #KEYS
local function by_key()
  local t = {}
  for i = 1, n_keys do
    t[i] = false
  end
  return t
end

-- What this call knows of its keys, by KEYS index (false: not read yet): a
-- counter's count, a hold key's answer (false: none held; then the answer
-- decided here) or a suppression (false: none); `true` only while the
-- pre-read lists the keys it reads. A key is only ever one of the three, so
-- one table holds them: each table made by by_key() costs a step per key of
-- the call, and the thirteen there were (three now) cost about 9% of a
-- lead's instructions with round 2's caps (a counter and a hold per lead).
-- Counters are read from Redis once and counted here, then written back
-- once at the end (see the writes): nothing else runs during a script, so
-- the counts are those INCR per send would leave, with a few commands per
-- counter instead of up to 27 per lead (a week alone is 13 counters, read
-- for every resource of every lead).
local values = by_key()
-- The expiries of what this call writes anew, by KEYS index (false: none):
-- the counters it sets (not those there before, see add()) and the answers
-- it decided.
local expiries = by_key()
local changed, n_changed = {}, 0 -- the counters it changed, in the order first changed

local function count(index)
  local v = values[index]
  if not v then
    v = tonumber(redis.call('GET', KEYS[index]) or '0')
    values[index] = v
  end
  return v
end

-- Reads the counters of `indexes` not yet read, in one MGET.
local function fetch(indexes, n)
  local missing, keys, m = nil, nil, 0
  for j = 1, n do
    local index = indexes[j]
    if not values[index] then
      if m == 0 then missing, keys = {}, {} end
      m = m + 1
      missing[m] = index
      keys[m] = KEYS[index]
    end
  end
  if m > 0 then
    local found = redis.call('MGET', unpack(keys))
    for f = 1, m do
      values[missing[f]] = tonumber(found[f] or '0')
    end
  end
end

-- A resource's verdict on a day (a shape's day table, shared by the leads of
-- the call) is worked out once and kept until a counter it reads changes:
-- `room[j]` how many more sends surely fit (a send lowers the room of every
-- limit it counts in by one at most, so add() lowers it by one per counter
-- the resource reads), `why[j]` what blocks it (a reason can give way to an
-- earlier one as counters grow, so add() forgets it); neither when not known.
-- Most leads of a call count in one resource of several, and with room to
-- spare nothing is worked out again (a rolling week alone is 13 counters,
-- read for every resource of every lead before). `open` counts the
-- resources whose room is known: when it is all of them, choose() only
-- compares counts.
-- Each watcher is the verdict's room and why tables, j and the verdict: the
-- two tables are the verdict's own, kept beside it so that add() reaches
-- them without a field lookup each (the verdict is only read for `open`).
local watchers = by_key() -- KEYS index -> {room, why, j, verdict, room, why, j, verdict, ...}

local function watch(index, verdict, j)
  local w = watchers[index]
  if not w then
    watchers[index] = {verdict.room, verdict.why, j, verdict}
  else
    local m = #w
    w[m + 1], w[m + 2], w[m + 3], w[m + 4] = verdict.room, verdict.why, j, verdict
  end
end

local kept = {} -- counters this call changed that were there before (KEYS index -> true)

local function add(index, expiry)
  local v = values[index] or count(index)
  values[index] = v + 1
  if not (expiries[index] or kept[index]) then
    n_changed = n_changed + 1
    changed[n_changed] = index
    -- A counter there before keeps the expiry it has (every writer of a
    -- counter gives it one: this script, increment(), and feedback.lua's
    -- refunds keep it), written by SET ... KEEPTTL. A new one (or a 0) is
    -- set with its day's expiry. (A counter is only ever added with its own
    -- day's expiry.) So a counter of a day already over, whose expiry counts
    -- from now (RedisQuotaStore.expires_at), lives the retention from its
    -- first write rather than its last.
    if v > 0 then
      kept[index] = true
    else
      expiries[index] = expiry
    end
  end
  local w = watchers[index]
  if w then
    for m = 1, #w, 4 do
      local rooms, j = w[m], w[m + 2]
      local room = rooms[j]
      if room then
        if room > 1 then
          rooms[j] = room - 1
        else
          rooms[j] = nil
          local verdict = w[m + 3]
          verdict.open = verdict.open - 1
        end
      end
      w[m + 1][j] = nil
    end
  end
end

-- The largest of the 7 rolling weeks around the middle of 13 counters.
local fetched = {} -- lists of counters read already
local function week_worst(indexes)
  if not fetched[indexes] then
    fetch(indexes, 13)
    fetched[indexes] = true
  end
  local window = 0
  for i = 1, 7 do
    window = window + values[indexes[i]]
  end
  local worst = window
  for start = 2, 7 do
    window = window + values[indexes[start + 6]] - values[indexes[start - 1]]
    if window > worst then
      worst = window
    end
  end
  return worst
end

-- Health only changes in feedback.lua: read and decoded once per call.
local healths_of = {} -- KEYS index -> decoded health or false

-- Health (section 10): a paused resource takes nothing, a cooling one nothing before its till.
local function unhealthy(health, at)
  if not health then
    return false
  end
  return health[1] == 'paused' or (health[1] == 'cooling' and health[2] > at)
end

-- What blocks resource j on `day` (nil: it has room), and if nothing, how
-- many more sends fit before one of its limits would.
local function resource_blocked(day, j, used, health)
  if unhealthy(health, day[8]) then
    return 'deferred_health'
  end
  local room = huge
  local cap = day[2][j]
  if cap >= 0 then
    if used >= cap then
      if day[4] ~= 0 and day[4][j] == 1 then
        return 'deferred_warmup'
      end
      return 'deferred_full'
    end
    room = cap - used
  end
  local week = day[5] ~= 0 and day[5][j] or 0
  if week ~= 0 then
    local left = week[1] - week_worst(week[2])
    if left <= 0 then
      return 'deferred_weekly'
    end
    if left < room then room = left end
  end
  local pool = day[6] ~= 0 and day[6][j] or 0
  if pool ~= 0 then
    local pooled = count(pool[1])
    if pool[2] >= 0 then
      if pooled >= pool[2] then
        return 'deferred_pool'
      end
      if pool[2] - pooled < room then room = pool[2] - pooled end
    end
    if pool[3] >= 0 then
      local left = pool[3] - week_worst(pool[4])
      if left <= 0 then
        return 'deferred_pool'
      end
      if left < room then room = left end
    end
  end
  local paced = day[7]
  if paced >= 0 then
    local left = paced - count(day[10][j])
    if left <= 0 then
      return 'moved_window' -- paced past the day's end
    end
    if left < room then room = left end
  end
  return nil, room
end

-- Every counter resource_blocked() reads for resource j of `day`, once each.
local function watch_resource(day, j, verdict)
  local seen = {}
  local function once(index)
    if not seen[index] then
      seen[index] = true
      watch(index, verdict, j)
    end
  end
  once(day[1][j])
  local week = day[5] ~= 0 and day[5][j] or 0
  if week ~= 0 then
    for p = 1, 13 do once(week[2][p]) end
  end
  local pool = day[6] ~= 0 and day[6][j] or 0
  if pool ~= 0 then
    once(pool[1])
    if pool[3] >= 0 then
      for p = 1, 13 do once(pool[4][p]) end
    end
  end
  if day[7] >= 0 then
    once(day[10][j])
  end
end

local verdicts = {} -- day (a shape's day table) -> {room = {}, why = {}, watched = {}, pick = {}, open = 0}

-- The resource taken on this day (its index), or nil and what blocked the day.
-- `lead`, `domain`: the day's lead and domain counters (0: no cap) and their
-- limits; `healths`: per resource its decoded health or false; `sticky`: the
-- resource_id the lead last had on the channel (or nil), `require`: the day waits for it.
local function choose(day, lead, lead_limit, domain, domain_limit, n, least_loaded, healths, ids,
                      sticky, require)
  if lead ~= 0 and (values[lead] or count(lead)) >= lead_limit then
    return nil, 'deferred_lead_limit:0:' .. n
  end
  if domain ~= 0 and (values[domain] or count(domain)) >= domain_limit then
    return nil, 'deferred_domain_limit:0:' .. n
  end
  local counters, caps = day[1], day[2]
  local verdict = verdicts[day]
  if not verdict then
    fetch(counters, n) -- (once read, a counter stays in `values`)
    verdict = {room = {}, why = {}, watched = {}, pick = {}, open = 0}
    verdicts[day] = verdict
  end
  local rooms, whys = verdict.room, verdict.why
  if verdict.open == n and not sticky and not least_loaded then
    -- Every resource has room (most leads of a call), so the least used
    -- one is taken, ties to the first: the loop below, without its checks
    -- (~2,300 fewer instructions a lead with round 2's counters).
    local best, best_count = 1, values[counters[1]]
    for j = 2, n do
      local c = values[counters[j]]
      if c < best_count then
        best, best_count = j, c
      end
    end
    if day[7] >= 0 then
      return best, nil, count(day[10][best])
    end
    return best, nil, best_count
  end
  local best, best_count, best_cap = nil, 0, -1
  local tally = nil
  local sticky_at, sticky_count, sticky_why = nil, 0, 'deferred_health'
  for j = 1, n do
    local c = values[counters[j]]
    local why = nil
    if not rooms[j] then
      why = whys[j]
      if not why then
        -- (health is read once per call: the same for every lead of it)
        local room
        why, room = resource_blocked(day, j, c, healths[j])
        if why then
          whys[j] = why
        else
          rooms[j] = room
          verdict.open = verdict.open + 1
        end
        if not verdict.watched[j] then
          verdict.watched[j] = true
          watch_resource(day, j, verdict)
        end
      end
    end
    if sticky and ids[j] == sticky then
      if why then
        sticky_why = why
      else
        sticky_at, sticky_count = j, c
      end
    end
    if why then
      if not tally then tally = {} end
      tally[why] = (tally[why] or 0) + 1
    elseif best == nil then
      best, best_count, best_cap = j, c, caps[j]
    elseif least_loaded then
      -- c / cap < best_count / best_cap, exactly; an unlimited resource is empty
      local mine_used, mine_cap = c, caps[j]
      if mine_cap < 0 then mine_used, mine_cap = 0, 1 end
      local their_used, their_cap = best_count, best_cap
      if their_cap < 0 then their_used, their_cap = 0, 1 end
      if mine_used * their_cap < their_used * mine_cap then
        best, best_count, best_cap = j, c, caps[j]
      end
    elseif c < best_count then
      best, best_count, best_cap = j, c, caps[j]
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
    if day[7] >= 0 then
      return best, nil, count(day[10][best]) -- k: the paced sends before this one
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

-- The leads' suppressions are in `values`, read before the leads with the
-- hold keys and counters (below): only feedback.lua writes them.
local function suppressed(lead)
  local found = values[lead[2]]
  if not found then
    return nil
  end
  local s = cjson.decode(found) -- [kind, since, till]
  if s[2] <= lead[5] and (s[3] == -1 or lead[5] < s[3]) then
    return s[1] .. ':' .. s[2] .. ':' .. s[3]
  end
  return nil
end

-- Per resource of the shape its health (false: none held), made once per
-- shape and call.
local no_healths = {}
local healths_of_shape = {}
local function healths_for(extra, n)
  if extra == 0 or n == 0 then
    return no_healths
  end
  local made = healths_of_shape[extra]
  if made then
    return made
  end
  local missing, keys, m = nil, nil, 0
  for j = 1, n do
    local index = extra[6][j]
    if healths_of[index] == nil then
      if m == 0 then missing, keys = {}, {} end
      m = m + 1
      missing[m] = index
      keys[m] = KEYS[index]
    end
  end
  if m > 0 then
    local raw = redis.call('MGET', unpack(keys))
    for f = 1, m do
      healths_of[missing[f]] = raw[f] and cjson.decode(raw[f]) or false
    end
  end
  local healths = {}
  for j = 1, n do
    healths[j] = healths_of[extra[6][j]]
  end
  healths_of_shape[extra] = healths
  return healths
end

-- Where each lead starts in `leads`; and before the leads, every hold key of
-- the call, the caps' counters of each ask's first day and the leads'
-- suppressions, by MGET (a command per lead and key cost more than the rules;
-- unpack() takes a few thousand values at most, so 1,000 a time).
local starts, n_leads = {}, 0
do
  -- (each once, marked listed in `values` until read: a key is a counter or
  -- a suppression, never both; inline, because a function call or a `#` per
  -- key cost more)
  local holds, counters, suppressions = {}, {}, {}
  local n_counters, n_suppressions = 0, 0
  local pos, last = 1, n_values
  while pos <= last do
    n_leads = n_leads + 1
    starts[n_leads] = pos
    holds[n_leads] = leads[pos]
    local info = leads[pos + 3]
    if info ~= 0 then
      local index = infos[info][2]
      if not values[index] then
        values[index] = true
        n_suppressions = n_suppressions + 1
        suppressions[n_suppressions] = index
      end
    end
    local n_asks = leads[pos + 4]
    pos = pos + 5
    for _ = 1, n_asks do
      local per_day = (leads[pos + 1] ~= 0 and 1 or 0) + (leads[pos + 2] ~= 0 and 1 or 0)
      for c = pos + 3, pos + 2 + per_day do -- the first day's
        local index = leads[c]
        if not values[index] then
          values[index] = true
          n_counters = n_counters + 1
          counters[n_counters] = index
        end
      end
      pos = pos + 3 + per_day * #shapes[leads[pos]][1]
    end
  end
  local function read(indexes, n, into, absent)
    local names = {}
    for f = 1, n do
      names[f] = KEYS[indexes[f]]
    end
    for from = 1, n, 1000 do
      local upto = math.min(from + 999, n)
      local found = redis.call('MGET', unpack(names, from, upto))
      for f = from, upto do
        local value = found[f - from + 1]
        into[indexes[f]] = value and (absent == false and value or tonumber(value)) or absent
      end
    end
  end
  read(holds, n_leads, values, false)
  read(counters, n_counters, values, 0)
  read(suppressions, n_suppressions, values, false)
end

-- Numbers as JSON writes them (integers), each formatted once per call: a
-- count and a send time come again for every resource that reaches them
-- (a format costs ~5,000 instructions; the table holds a few per lead).
-- Also the text of every number the script passes to Redis (the writes).
local digits = {}
local function number(n)
  local text = digits[n]
  if not text then
    text = string.format('%d', n)
    digits[n] = text
  end
  return text
end

-- Keys as JSON strings, by KEYS index, each encoded once.
local quoted_keys = {}
local function quoted(index)
  local text = quoted_keys[index]
  if not text then
    text = cjson.encode(KEYS[index])
    quoted_keys[index] = text
  end
  return text
end
-- The same after a comma.
local comma_quoted_keys = {}
local function comma_quoted(index)
  local text = comma_quoted_keys[index]
  if not text then
    text = ',' .. quoted(index)
    comma_quoted_keys[index] = text
  end
  return text
end

local no_days = {}
local out = {}
-- answers decided here, written at the end: their hold keys' indexes (their
-- expiries in `expiries`)
local new_held, n_new = {}, 0
-- The leads' indexes of sends, by KEYS index: the sends this call adds,
-- written with the rest at the end (a lead may come twice in a call, and a
-- script that fails part-way must not leave an index naming sends whose
-- counters it never wrote). Only the sticky sender reads what an index held
-- already: read then, once per call (most leads of a call need no read).
-- These tables, and the quoted keys', are only filled when leads carry a
-- lead_id, and then at one key in several: not made by by_key(), whose step
-- per key of the call cost more than their growing.
local index_of, index_read = {}, {}
-- per index (KEYS index) its key and the fields and sends to write, in one
-- HSET, and its expiry; the indexes written, in the order first written
local index_sets, index_till, set_order, n_sets = {}, {}, {}, 0

-- Whether some ask of the call has a sticky sender: only then does the call
-- keep the sends it adds as tables, for sticky_resource() (a send made for an
-- ask without one may be read by a later sticky ask of the same lead in the
-- call, so this is the whole call's; by default no client has one, and the
-- two tables a lead cost ~6,000 instructions, 4% of the worker's requests).
local any_sticky = false
for s = 1, #shapes do
  local extra = shapes[s][4]
  if extra ~= 0 and extra[4] > 0 then
    any_sticky = true
  end
end

local function index_for(key)
  local index = index_of[key]
  if not index then
    index = {}
    index_of[key] = index
  end
  return index
end

local function read_index(key)
  local index = index_for(key)
  if not index_read[key] then
    index_read[key] = true
    local raw = redis.call('HGETALL', KEYS[key])
    for f = 1, #raw, 2 do
      if index[raw[f]] == nil then -- a send of this call is the newer
        index[raw[f]] = cjson.decode(raw[f + 1])
      end
    end
  end
  return index
end
local plans, plan_at = ARGV[3], 1
for i = 1, n_leads do
  local pos = starts[i]
  local held_index = leads[pos]
  local held = values[held_index]
  local info = leads[pos + 3]
  info = info ~= 0 and infos[info] or 0
  local plan_from = plan_at
  plan_at = plan_at + leads[pos + 2]
  if not held then
    local picks, blocked, ks = nil, nil, nil -- the answer's three lists, as JSON
    local stopped = info ~= 0 and suppressed(info) or nil
    -- index: the lead's sends as tables, when a sticky sender may read them
    local indexed, index, added = info ~= 0 and not stopped, nil, false
    if indexed and any_sticky then
      index = index_for(info[1])
    end
    local at = pos + 5
    for _ = 1, leads[pos + 4] do
      local shape = shapes[leads[at]]
      local days, ids, least_loaded, extra = shape[1], shape[2], shape[3] == 1, shape[4]
      local n = #ids
      local lead_ref, domain_ref = leads[at + 1], leads[at + 2]
      local lead_limit = lead_ref ~= 0 and refs[lead_ref] or 0
      local domain_limit = domain_ref ~= 0 and refs[domain_ref] or 0
      local per_day = (lead_ref ~= 0 and 1 or 0) + (domain_ref ~= 0 and 1 or 0)
      local caps_at = at + 3
      at = caps_at + per_day * #days
      local pick, first, k = '"-"', '""', '-1'
      local healths = extra == 0 and no_healths or healths_for(extra, n)
      if stopped then days = no_days end
      for d = 1, #days do
        local day = days[d]
        local sticky = nil
        if indexed and extra ~= 0 and extra[4] > 0 then
          sticky = sticky_resource(read_index(info[1]), extra[1], day[8], extra[4])
        end
        local lead_counter, domain_counter = 0, 0
        if per_day > 0 then
          local c = caps_at + (d - 1) * per_day
          if lead_ref ~= 0 then
            lead_counter = leads[c]
            c = c + 1
          end
          if domain_ref ~= 0 then
            domain_counter = leads[c]
          end
        end
        local best, why, used = choose(
          day, lead_counter, lead_limit, domain_counter, domain_limit, n, least_loaded,
          healths, ids, sticky, extra ~= 0 and extra[5] == 1)
        if best then
          local expiry = day[3]
          local counter = day[1][best]
          local pool = day[6] ~= 0 and day[6][best] or 0
          add(counter, expiry)
          if pool ~= 0 then add(pool[1], expiry) end
          if lead_counter ~= 0 then add(lead_counter, expiry) end
          if domain_counter ~= 0 then add(domain_counter, expiry) end
          if day[7] >= 0 then
            add(day[10][best], expiry)
          end
          local said = verdicts[day].pick -- the pick as JSON, made once per day and resource
          pick = said[best]
          if not pick then
            pick = '"' .. number(d - 1) .. ':' .. shape[5][best] .. '"'
            said[best] = pick
          end
          k = number(used)
          if indexed and extra ~= 0 then
            local send_at = day[8] + used * extra[2] + extra[3]
            local field = info[3] .. '|' .. extra[1]
            if index then
              index[field] = {info[4], ids[best], send_at, day[9], false, 'r'}
            end
            added = true
            local writes = index_sets[info[1]]
            if not writes then
              writes = {KEYS[info[1]]}
              index_sets[info[1]] = writes
              n_sets = n_sets + 1
              set_order[n_sets] = info[1]
            end
            -- cjson.encode(send), written out (the shared strings escaped
            -- once each; the lead's own counter, named by no other lead,
            -- escaped here and not kept), with the counters the send counted
            -- in (feedback.lua gives them back; within this call only the
            -- sticky sender reads the index, and it reads no names). One
            -- concatenation: built piece by piece, the names cost a tenth of
            -- a lead's time.
            writes[#writes + 1] = field
            writes[#writes + 1] = '[' .. cjson.encode(info[4]) .. ',"'
              .. shape[5][best] .. '",' .. number(send_at) .. ',"' .. day[9] .. '",['
              .. quoted(counter)
              .. (pool ~= 0 and comma_quoted(pool[1]) or '')
              .. (lead_counter ~= 0 and ',' .. cjson.encode(KEYS[lead_counter]) or '')
              .. (domain_counter ~= 0 and comma_quoted(domain_counter) or '')
              .. '],"r"]'
          end
          break
        end
        if d == 1 then
          first = '"' .. why .. '"'
        end
      end
      if picks then
        picks, blocked, ks = picks .. ',' .. pick, blocked .. ',' .. first, ks .. ',' .. k
      else
        picks, blocked, ks = pick, first, k
      end
    end
    if added then
      -- The index lives until the latest expiry any of the lead's events
      -- that added a send to it gave it.
      local till = tonumber(info[6])
      if not index_till[info[1]] or index_till[info[1]] < till then
        index_till[info[1]] = till
      end
    end
    -- Written out here rather than by cjson.encode, which cost a third of a
    -- lead's time: the plan comes as JSON (ARGV[3]), the resource ids escaped (shapes).
    held = '[' .. string.sub(plans, plan_from, plan_at - 1) .. ',[' .. (picks or '') .. '],[' .. (blocked or '') .. '],['
      .. (ks or '') .. '],' .. (stopped and cjson.encode(stopped) or '""') .. ']'
    values[held_index] = held
    n_new = n_new + 1
    new_held[n_new] = held_index
    expiries[held_index] = refs[leads[pos + 1]]
  elseif rewrite_found and not expiries[held_index] then
    redis.call('SET', KEYS[held_index], held, 'KEEPTTL')
  end
  out[i] = held
end

-- The writes, last: new counters and held answers by MSET (200 keys a
-- command) and each its PEXPIREAT (measured: ~12% of the call less than
-- SET ... PXAT per key; the ms forms because Redis rewrites EXAT and
-- EXPIREAT into them for replication); counters there before by SET ...
-- KEEPTTL, one command where MSET, which drops a key's expiry, needed a
-- PEXPIREAT again (most counters a call changes are shared: a resource's, a
-- pool's, a recipient domain's; a lead's is new). Counters first, then the
-- answers, then the indexes of sends that name them: Redis does not undo a
-- script that fails part-way, and a count without its answer only makes a
-- retry count again (limits hold), where an answer without its count would
-- let a limit be passed. Numbers go to Redis as text (number()'s, or the
-- client's for expiries): Redis 7.2.0-7.2.4 turn a Lua number such as
-- 200000000 into 2e+08, which PEXPIREAT refuses and a counter would keep
-- (redis/redis#13113).
local function write(n, indexes, value_of, until_of)
  for from = 1, n, 200 do
    local upto = math.min(from + 199, n)
    local args, a = {}, 0
    for w = from, upto do
      local index = indexes[w]
      args[a + 1], args[a + 2] = KEYS[index], value_of[index]
      a = a + 2
    end
    redis.call('MSET', unpack(args))
    for w = from, upto do
      local index = indexes[w]
      redis.call('PEXPIREAT', KEYS[index], until_of[index])
    end
  end
end
do
  local fresh, n_fresh, counts = {}, 0, {}
  for c = 1, n_changed do
    local index = changed[c]
    if kept[index] then
      redis.call('SET', KEYS[index], number(values[index]), 'KEEPTTL')
    else
      n_fresh = n_fresh + 1
      fresh[n_fresh] = index
      counts[index] = number(values[index])
    end
  end
  write(n_fresh, fresh, counts, expiries)
end
write(n_new, new_held, values, expiries)
for w = 1, n_sets do
  local key = set_order[w]
  redis.call('HSET', unpack(index_sets[key]))
  -- NX: a new index (most are) has no expiry yet; GT: an older one only
  -- ever lives longer. (In ms, as the writes above: Redis rewrites
  -- EXPIREAT into PEXPIREAT, ~1,800 instructions a lead.)
  local till = number(index_till[key]) .. '000'
  if redis.call('PEXPIREAT', KEYS[key], till, 'NX') == 0 then
    redis.call('PEXPIREAT', KEYS[key], till, 'GT')
  end
end
return '[' .. table.concat(out, ',') .. ']'
