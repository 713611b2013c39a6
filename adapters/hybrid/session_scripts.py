"""Lua scripts of the session and consent parts (``redis_sessions.py``,
``redis_consents.py``): every read-then-write of one session or one consent runs inside
Redis, atomically, in the one hash slot of its keys.

Conventions as in ``scripts.py``: ``ARGV[1]`` is the caller's ``now`` (liveness and expiry
are decided by the caller's clock, never Redis's); records are msgpack arrays.

Sessions. A session row is ``{idle_exp, exp, sid, user_id, auth_time, amr, acr,
created_at, clients}`` at ``Pse:{<id_hash>}``; its grants are the sorted set
``Psg:{<id_hash>}`` (member: the msgpack pair ``{client_id, grant_id}``, score: the order
of arrival, so grants come back in the order they were recorded). Both keys expire at the
session's end, ``min(idle_exp, exp)``, and every write that pushes ``idle_exp`` moves both
TTLs with it. A row that is not live at ``now`` is treated as absent even while its key
remains. The sid pointer ``Psid:<sid>`` and the user's index ``Psu:<user_id>`` live in
other slots: the callers write them before the row and clean them up after an end.

Consents. ``Pcn:{<user_id>}`` is a hash of the user's consents (field: client id, value:
``{scopes, created_at, updated_at}``; the scopes unordered, sorted by the reader);
``Pcg:{<user_id>}<hex client id>`` the sorted set of the grants issued under one consent
(member: grant id, score: its ``exp``), which lives until its last grant's ``exp``. Grants
whose ``exp`` is past are pruned on every write to the set.
"""

from __future__ import annotations

_SESSION = """
local function live(row, now)
  return row[1] > now and row[2] > now
end
local function load(key, now)
  local v = redis.call('GET', key)
  if not v then return nil end
  local row = cmsgpack.unpack(v)
  if not live(row, now) then return nil end
  return row
end
local function keep(rec, grants, row, now)
  local ttl = math.max(math.min(row[1], row[2]) - now, 1)
  local v = cmsgpack.pack(row)
  redis.call('SET', rec, v, 'EX', ttl)
  if redis.call('EXISTS', grants) == 1 then redis.call('EXPIRE', grants, ttl) end
  return v
end
local function push_idle(row, idle)
  row[1] = math.min(math.max(row[1], idle), row[2])
end
local function add_grant(grants, member)
  if redis.call('ZSCORE', grants, member) then return false end
  redis.call('ZADD', grants, redis.call('ZCARD', grants) + 1, member)
  return true
end
local function add_client(row, client)
  for _, c in ipairs(row[9]) do
    if c == client then return false end
  end
  row[9][#row[9] + 1] = client
  return true
end
"""

# KEYS: row, grants. ARGV: now, row. A new session starts without grants.
CREATE_SESSION = _SESSION + """
redis.call('DEL', KEYS[2])
keep(KEYS[1], KEYS[2], cmsgpack.unpack(ARGV[2]), tonumber(ARGV[1]))
return 1
"""

# KEYS: row, grants. ARGV: now, idle_exp, client id, grant member.
# Returns the row as it now is, or nil when there is no live session.
ADD_SESSION_GRANT = _SESSION + """
local now = tonumber(ARGV[1])
local row = load(KEYS[1], now)
if not row then return false end
add_grant(KEYS[2], ARGV[4])
add_client(row, ARGV[3])
push_idle(row, tonumber(ARGV[2]))
return keep(KEYS[1], KEYS[2], row, now)
"""

# KEYS: the new row, grants. ARGV: now, row, then each grant member in its order.
# Writes a re-keyed session (claimed from its old keys by END_SESSIONS); returns 1, or 0
# and writes nothing when a session already holds the key (never one we issued: the
# caller then reports the session lost rather than merge two).
PUT_REKEYED_SESSION = _SESSION + """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('DEL', KEYS[2])
for i = 3, #ARGV do add_grant(KEYS[2], ARGV[i]) end
keep(KEYS[1], KEYS[2], cmsgpack.unpack(ARGV[2]), tonumber(ARGV[1]))
return 1
"""

# KEYS: per session row, grants. ARGV: now, the sid it must have ('' for any), the user it
# must belong to ('' for any). Removes each such live session; returns {n, row, {grant
# member, ...}, ...} for each one removed (n: its place in KEYS, from 1), so every other
# caller gets nothing for it.
END_SESSIONS = _SESSION + """
local now = tonumber(ARGV[1])
local out = {}
for k = 1, #KEYS, 2 do
  local row = load(KEYS[k], now)
  if row and (ARGV[2] == '' or row[3] == ARGV[2]) and (ARGV[3] == '' or row[4] == ARGV[3]) then
    out[#out + 1] = (k + 1) / 2
    out[#out + 1] = redis.call('GET', KEYS[k])
    out[#out + 1] = redis.call('ZRANGE', KEYS[k + 1], 0, -1)
    redis.call('DEL', KEYS[k], KEYS[k + 1])
  end
end
return out
"""

# KEYS: row, grants. ARGV: now. Removes a session that is no longer live at ``now`` (its key
# not yet expired by Redis); returns 1 when it did.
PURGE_SESSION = _SESSION + """
local v = redis.call('GET', KEYS[1])
if not v or live(cmsgpack.unpack(v), tonumber(ARGV[1])) then return 0 end
redis.call('DEL', KEYS[1], KEYS[2])
return 1
"""

# KEYS: per record row, grants. ARGV: now, then per record the row, the number of grants
# and each grant member. A live session held here gets the union of clients and grants,
# the later auth_time (with its amr and acr) and the earlier exp and idle_exp; otherwise
# the record is stored as given. Returns how many records changed the store.
IMPORT_SESSIONS = _SESSION + """
local now = tonumber(ARGV[1])
local changed = 0
local a = 2
for k = 1, #KEYS, 2 do
  local rec, grants = KEYS[k], KEYS[k + 1]
  local incoming = cmsgpack.unpack(ARGV[a])
  local n = tonumber(ARGV[a + 1])
  local row = load(rec, now)
  local dirty = false
  if not row then
    row = incoming
    dirty = true
    redis.call('DEL', grants)
  else
    if incoming[5] > row[5] then
      row[5], row[6], row[7] = incoming[5], incoming[6], incoming[7]
      dirty = true
    end
    for _, c in ipairs(incoming[9]) do
      if add_client(row, c) then dirty = true end
    end
    if incoming[2] < row[2] then row[2] = incoming[2]; dirty = true end
    if incoming[1] < row[1] then row[1] = incoming[1]; dirty = true end
  end
  for i = a + 2, a + 1 + n do
    if add_grant(grants, ARGV[i]) then dirty = true end
  end
  if dirty then
    keep(rec, grants, row, now)
    changed = changed + 1
  end
  a = a + 2 + n
end
return changed
"""

_CONSENT = """
local function keep_until(key, ttl)
  if redis.call('PTTL', key) < ttl * 1000 then redis.call('EXPIRE', key, ttl) end
end
local function add_scope(row, scope)
  for _, s in ipairs(row[1]) do
    if s == scope then return false end
  end
  row[1][#row[1] + 1] = scope
  return true
end
local function add_grant(grants, grant, exp, now)
  if exp <= now then return false end
  local held = redis.call('ZSCORE', grants, grant)
  if held and tonumber(held) >= exp then return false end
  redis.call('ZADD', grants, exp, grant)
  keep_until(grants, exp - now)
  return true
end
"""

# KEYS: consents, grants. ARGV: now, client id, scope, ... Adds the scopes (creating the
# consent, without grants); returns the consent's value as it now is.
GRANT_CONSENT = _CONSENT + """
local now = tonumber(ARGV[1])
local held = redis.call('HGET', KEYS[1], ARGV[2])
local row
if held then
  row = cmsgpack.unpack(held)
  row[3] = now
else
  row = {{}, now, now}
  redis.call('DEL', KEYS[2])
end
for i = 3, #ARGV do add_scope(row, ARGV[i]) end
local v = cmsgpack.pack(row)
redis.call('HSET', KEYS[1], ARGV[2], v)
return v
"""

# KEYS: consents, grants. ARGV: now, client id, grant id, exp. Returns 0, and remembers
# nothing, when there is no consent; else 1. The set keeps the later of two expiries.
RECORD_CONSENT_GRANT = _CONSENT + """
if redis.call('HEXISTS', KEYS[1], ARGV[2]) == 0 then return 0 end
local now = tonumber(ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
add_grant(KEYS[2], ARGV[3], tonumber(ARGV[4]), now)
return 1
"""

# KEYS: consents, grants. ARGV: now, client id. Deletes the consent and its grants and
# returns {value, {grant id, exp, ...}} (the live grants), or nil for every other caller.
WITHDRAW_CONSENT = _CONSENT + """
local v = redis.call('HGET', KEYS[1], ARGV[2])
if not v then return false end
redis.call('HDEL', KEYS[1], ARGV[2])
local grants = redis.call('ZRANGEBYSCORE', KEYS[2], '(' .. ARGV[1], '+inf', 'WITHSCORES')
redis.call('DEL', KEYS[2])
return {v, grants}
"""

# KEYS: per record consents, grants. ARGV: now, then per record the client id, the value,
# the number of grants and each grant's id and exp. A consent held here gets the union of
# scopes and grants, the earlier created_at and the later updated_at. Returns how many
# records changed the store.
IMPORT_CONSENTS = _CONSENT + """
local now = tonumber(ARGV[1])
local changed = 0
local a = 2
for k = 1, #KEYS, 2 do
  local consents, grants = KEYS[k], KEYS[k + 1]
  local client = ARGV[a]
  local incoming = cmsgpack.unpack(ARGV[a + 1])
  local n = tonumber(ARGV[a + 2])
  local held = redis.call('HGET', consents, client)
  local row
  local dirty = false
  if not held then
    row = incoming
    dirty = true
    redis.call('DEL', grants)
  else
    row = cmsgpack.unpack(held)
    for _, s in ipairs(incoming[1]) do
      if add_scope(row, s) then dirty = true end
    end
    if incoming[2] < row[2] then row[2] = incoming[2]; dirty = true end
    if incoming[3] > row[3] then row[3] = incoming[3]; dirty = true end
  end
  if dirty then redis.call('HSET', consents, client, cmsgpack.pack(row)) end
  redis.call('ZREMRANGEBYSCORE', grants, '-inf', now)
  for i = a + 3, a + 1 + 2 * n, 2 do
    if add_grant(grants, ARGV[i], tonumber(ARGV[i + 1]), now) then dirty = true end
  end
  if dirty then changed = changed + 1 end
  a = a + 3 + 2 * n
end
return changed
"""
