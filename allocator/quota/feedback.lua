-- Apply a batch of send-events atomically (CONTRACT.md section 10), each once:
-- its outcome is held under its feedback key and a redelivery gets it back
-- unchanged. The same rules in Python: allocator/quota/feedback.py (the
-- in-memory store runs them; a test holds the two to the same answers).
-- KEYS = every key of the call, each once. ARGV[1] = a JSON list, per event:
--  [1 feedback key, 2 hold till, 3 kind, 4 occurred (Unix s), 5 occurred day,
--   6 sends index key, 7 "<allocation_id>|<channel>" or "", 8 resource_id,
--   9 channel, 10 health key or 0, 11 suppression key, 12 cool till,
--   13 stats: 0 or [[sent key per day], [bounced ...], [complained ...]] over the
--      7 days that end on the occurred day (the last is that day),
--   14 bounce rate limit, 15 complaint limit, 16 suppress till (-1: for good),
--   17 stats expiry, 18 the bounce rate limit as Python writes it]
-- Returns per event its outcome as JSON: ["!", "none"] or ["!", "other",
-- reserved resource_id] (no such send: not held, a dead letter), else
-- [refunded, [[allocation_id, event_id, channel, resource_id, send_at], ...],
--  [[channel, resource_id, state, till, reason], ...]], the reason as
-- quota/feedback.py writes it.
local events = cjson.decode(ARGV[1])
local out = {}

-- Numbers go to Redis as decimal text made here: Redis 7.2.0-7.2.4 turn a
-- Lua number such as 200000000 into 2e+08, which EXPIREAT refuses
-- (redis/redis#13113).
local function text(n)
  return string.format('%d', n)
end

local function refund_keys(keys)
  for _, key in ipairs(keys) do
    local n = tonumber(redis.call('GET', key) or '0')
    if n > 0 then
      redis.call('DECR', key)
    end
  end
end

local function total(indexes)
  local sum = 0
  for _, index in ipairs(indexes) do
    sum = sum + tonumber(redis.call('GET', KEYS[index]) or '0')
  end
  return sum
end

local function cool(ev, till, why)
  local key = KEYS[ev[10]]
  local found = redis.call('GET', key)
  if found then
    local h = cjson.decode(found)
    if h[1] == 'paused' or (h[1] == 'cooling' and h[2] >= till) then
      return {}
    end
  end
  redis.call('SET', key, cjson.encode({'cooling', till, why}))
  redis.call('EXPIREAT', key, text(till + 8 * 86400))
  return {{ev[9], ev[8], 'cooling', till, why}}
end

for i, ev in ipairs(events) do
  local held = redis.call('GET', KEYS[ev[1]])
  if held then
    out[i] = held
  else
    local kind = ev[3]
    local send, field = nil, ev[7]
    local answer = nil
    if field ~= '' then
      local raw = redis.call('HGET', KEYS[ev[6]], field)
      if not raw then
        answer = cjson.encode({'!', 'none'})
      else
        send = cjson.decode(raw)
        if send[2] ~= ev[8] then
          answer = cjson.encode({'!', 'other', send[2]})
        end
      end
    end
    if answer then
      out[i] = answer -- not held: a dead letter
    else
      local refunded, cancelled, health = 0, {}, {}
      local day = ev[5]
      if kind == 'failed' then
        if send[6] == 'r' then
          send[6] = 'd' -- its day had ended: it goes on counting
          if send[4] >= day then
            refund_keys(send[5])
            refunded = 1
            send[6] = 'f'
          end
          redis.call('HSET', KEYS[ev[6]], field, cjson.encode(send))
        end
      elseif kind == 'sent' or kind == 'bounced' or kind == 'complained' then
        local stats = ev[13]
        local which = kind == 'sent' and 1 or (kind == 'bounced' and 2 or 3)
        local today = KEYS[stats[which][7]]
        redis.call('INCR', today)
        redis.call('EXPIREAT', today, text(ev[17]))
        if kind == 'bounced' then
          local sent, bounced = total(stats[1]), total(stats[2])
          if sent >= 20 and bounced / sent > ev[14] then -- the rate, as feedback.py: no rounded product
            health = cool(ev, ev[12], 'bounce rate ' .. bounced .. '/' .. sent ..
              ' over 7 days above ' .. ev[18])
          end
        elseif kind == 'complained' then
          local complaints = total(stats[3])
          if complaints >= ev[15] then
            health = cool(ev, ev[12], complaints .. ' complaints over 7 days (limit ' ..
              ev[15] .. ')')
          end
        end
      elseif kind == 'throttled' then
        health = cool(ev, ev[12], 'throttled')
      elseif kind == 'auth_failed' then
        local key = KEYS[ev[10]]
        local found = redis.call('GET', key)
        if not (found and cjson.decode(found)[1] == 'paused') then
          redis.call('SET', key, cjson.encode({'paused', -1, 'auth_failed'}))
          health = {{ev[9], ev[8], 'paused', -1, 'auth_failed'}}
        end
      else -- a stop: replied, meeting_booked, unsubscribed
        local raw = redis.call('HGETALL', KEYS[ev[6]])
        local fields, sends = {}, {}
        for f = 1, #raw, 2 do
          fields[#fields + 1] = raw[f]
          sends[raw[f]] = raw[f + 1]
        end
        table.sort(fields)
        for _, f in ipairs(fields) do
          local s = cjson.decode(sends[f])
          if s[6] == 'r' and s[3] > ev[4] then
            s[6] = 'x'
            if s[4] >= day then
              refund_keys(s[5])
              refunded = refunded + 1
              s[6] = 'c'
            end
            redis.call('HSET', KEYS[ev[6]], f, cjson.encode(s))
            local bar = string.find(f, '|[^|]*$')
            cancelled[#cancelled + 1] = {
              string.sub(f, 1, bar - 1), s[1], string.sub(f, bar + 1), s[2], s[3]}
          end
        end
        local key = KEYS[ev[11]]
        local since, till = ev[4], ev[16]
        local found = redis.call('GET', key)
        if found then
          local s = cjson.decode(found)
          if s[2] < since then
            since = s[2]
          end
          if s[3] == -1 or (till ~= -1 and s[3] > till) then
            till = s[3]
          end
        end
        redis.call('SET', key, cjson.encode({kind, since, till}))
        if till == -1 then
          redis.call('PERSIST', key)
        else
          redis.call('EXPIREAT', key, text(till + 86400))
        end
      end
      local answer_now = cjson.encode({refunded, cancelled, health})
      redis.call('SET', KEYS[ev[1]], answer_now, 'EXAT', text(ev[2]))
      out[i] = answer_now
    end
  end
end
return out
