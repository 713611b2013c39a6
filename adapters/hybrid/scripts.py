"""Lua scripts: every read-then-write on token state runs inside Redis, atomically.

Conventions: ``ARGV[1]`` is the caller's ``now`` (expiry is decided by the caller's clock,
as the port requires, not by Redis's); records are the msgpack arrays of ``codec.py``
(``exp`` first); an access token value is a flag byte (``1``/``0``) then its array.
Index sets (``g:<grant>``, ``s:<sub>``) hold members ``t:<hash>`` and ``r:<hash>``, and a
subject set also ``c:<hash>`` (the user's pending codes); a grant set that holds ``x``
belongs to a revoked grant.

``tag`` is ``''`` on a single Redis. On a Redis Cluster it is the grant's hash tag
``{g:<grant>}``: a member ``t:<hash>`` of that grant's set then names the key
``<prefix>t:{g:<grant>}<hash>``, and the grant set is ``<prefix>g:{g:<grant>}``, so every
key a script touches is in the slot of the keys it was called with (``cluster_state.py``).

Every write gives its key a TTL, and no script ever lengthens a record's TTL: a revocation
is ``SETRANGE`` (which keeps the TTL), a removal is ``DEL``.
"""

from __future__ import annotations

# Revoke everything listed in one index set. Used by revoke_grant, revoke_subject and
# refresh-token reuse. A grant set is then reduced to the revoked flag ``x`` (keeping its
# TTL, at least ``flag_ms``) so that a pair saved later for this grant -- a rotation that
# raced the reuse detection -- is stored revoked. A subject set is simply dropped.
_REVOKE_SET = """
local function revoke_set(set, prefix, tag, now, flag_ms)
  local changed = 0
  local members = redis.call('SMEMBERS', set)
  for i = 1, #members do
    local m = members[i]
    local kind = string.sub(m, 1, 1)
    local key = prefix .. kind .. ':' .. tag .. string.sub(m, 3)
    if kind == 't' then
      local v = redis.call('GET', key)
      if v and string.sub(v, 1, 1) == '1' and cmsgpack.unpack(string.sub(v, 2))[1] > now then
        redis.call('SETRANGE', key, 0, '0')
        changed = changed + 1
      end
    elseif kind == 'r' or kind == 'c' then
      local v = redis.call('GET', key)
      if v then
        if cmsgpack.unpack(v)[1] > now then changed = changed + 1 end
        redis.call('DEL', key)
      end
    end
  end
  if flag_ms then
    local pttl = redis.call('PTTL', set)
    redis.call('DEL', set)
    redis.call('SADD', set, 'x')
    redis.call('PEXPIRE', set, math.max(pttl, flag_ms))
  else
    redis.call('DEL', set)
  end
  return changed
end
"""

# KEYS: code, subject set ('' for a code without user). ARGV: code value, ttl, member.
# The code and its index entry are written together, so revoke_subject never misses a code.
SAVE_CODE = """
local ttl = tonumber(ARGV[2])
redis.call('SET', KEYS[1], ARGV[1], 'EX', ttl)
if KEYS[2] ~= '' then
  redis.call('SADD', KEYS[2], ARGV[3])
  if redis.call('PTTL', KEYS[2]) < ttl * 1000 then redis.call('EXPIRE', KEYS[2], ttl) end
end
return 0
"""

# KEYS: code, tombstone, retry copy. ARGV: now, remember_until, taker (random, one per
# take_code call).
# Returns {1, record} (taken), {2, grant_id, client_id} (a replay), or {0}.
# A take asked again by the same call -- its first answer lost with a connection, and the
# cluster client or the store asking again -- gets the same answer, not "a replay": the
# tombstone names the taker (after the fields every reader decodes), and a copy of the
# record lives while the code would have (a few seconds; not as long as the tombstone).
TAKE_CODE = """
local now = tonumber(ARGV[1])
local v = redis.call('GET', KEYS[1])
if v then
  redis.call('DEL', KEYS[1])
  local c = cmsgpack.unpack(v)
  if c[1] > now then
    local until_ = tonumber(ARGV[2])
    if until_ > now then
      redis.call('SET', KEYS[2], cmsgpack.pack({until_, c[2], c[3], ARGV[3]}),
                 'EX', until_ - now)
      redis.call('SET', KEYS[3], v, 'EX', c[1] - now)
    end
    return {1, v}
  end
end
local t = redis.call('GET', KEYS[2])
if t then
  local d = cmsgpack.unpack(t)
  if d[1] > now then
    if d[4] == ARGV[3] then
      local again = redis.call('GET', KEYS[3])
      if again then return {1, again} end
      return {0}
    end
    return {2, d[2], d[3]}
  end
end
return {0}
"""

# KEYS: access, refresh, access grant set, access subject set, refresh grant set,
#       refresh subject set ('' when absent).
# ARGV: access value, access ttl, refresh value, refresh ttl, access member, refresh member.
# Returns 1 when the grant was already revoked (the pair is then stored revoked / dropped).
SAVE_TOKENS = """
local function index(set, member, ttl)
  if set == '' then return end
  redis.call('SADD', set, member)
  -- PTTL, not TTL: TTL rounds to the nearest second, so a set with 9.6 s left would read
  -- as 10 and then expire before a new 10 s member.
  if redis.call('PTTL', set) < ttl * 1000 then redis.call('EXPIRE', set, ttl) end
end
local function flagged(set)
  return set ~= '' and redis.call('SISMEMBER', set, 'x') == 1
end
local revoked = flagged(KEYS[3]) or flagged(KEYS[5])
local value = ARGV[1]
local ttl = tonumber(ARGV[2])
if revoked then value = '0' .. string.sub(value, 2) end
redis.call('SET', KEYS[1], value, 'EX', ttl)
index(KEYS[3], ARGV[5], ttl)
index(KEYS[4], ARGV[5], ttl)
if KEYS[2] ~= '' and not revoked then
  local rttl = tonumber(ARGV[4])
  redis.call('SET', KEYS[2], ARGV[3], 'EX', rttl)
  index(KEYS[5], ARGV[6], rttl)
  index(KEYS[6], ARGV[6], rttl)
end
if revoked then return 1 end
return 0
"""

# KEYS: cluster only: grant set, access record (when ARGV[1] ~= ''), refresh record (when
#       ARGV[4] ~= ''), all of one grant. The cluster's SAVE_TOKENS, without subject sets.
# ARGV: access value, access ttl, access member, refresh value, refresh ttl, refresh member,
#       '1' when the caller already knows the pair is revoked.
# Returns 1 when the grant was already revoked (the pair is then stored revoked / dropped).
SAVE_GRANT = """
local function index(set, member, ttl)
  redis.call('SADD', set, member)
  if redis.call('PTTL', set) < ttl * 1000 then redis.call('EXPIRE', set, ttl) end
end
local revoked = ARGV[7] == '1' or redis.call('SISMEMBER', KEYS[1], 'x') == 1
local k = 2
if ARGV[1] ~= '' then
  local value = ARGV[1]
  local ttl = tonumber(ARGV[2])
  if revoked then value = '0' .. string.sub(value, 2) end
  redis.call('SET', KEYS[k], value, 'EX', ttl)
  index(KEYS[1], ARGV[3], ttl)
  k = k + 1
end
if ARGV[4] ~= '' and not revoked then
  local rttl = tonumber(ARGV[5])
  redis.call('SET', KEYS[k], ARGV[4], 'EX', rttl)
  index(KEYS[1], ARGV[6], rttl)
end
if revoked then return 1 end
return 0
"""

# KEYS: access. ARGV: now. Returns 1 when a live record was found (and is now revoked).
REVOKE_ACCESS = """
local v = redis.call('GET', KEYS[1])
if not v or cmsgpack.unpack(string.sub(v, 2))[1] <= tonumber(ARGV[1]) then return 0 end
if string.sub(v, 1, 1) ~= '0' then redis.call('SETRANGE', KEYS[1], 0, '0') end
return 1
"""

# KEYS: refresh, reuse marker. ARGV: now, key prefix, token hash, flag ms, tag.
# Returns {1, record} (taken), {2, grant_id, changed} (reused: family revoked), or {0}.
TAKE_REFRESH = _REVOKE_SET + """
local now = tonumber(ARGV[1])
local prefix = ARGV[2]
local tag = ARGV[5]
local function grant_set(grant)
  if tag == '' then return prefix .. 'g:' .. grant end
  return prefix .. 'g:' .. tag
end
local v = redis.call('GET', KEYS[1])
if v then
  local r = cmsgpack.unpack(v)
  if r[1] > now then
    redis.call('DEL', KEYS[1])
    -- The marker lives exactly as long as the token would have, no longer.
    redis.call('SET', KEYS[2], cmsgpack.pack({r[1], r[3]}), 'EX', r[1] - now)
    local access = prefix .. 't:' .. tag .. r[2]
    local a = redis.call('GET', access)
    if a and string.sub(a, 1, 1) == '1' then redis.call('SETRANGE', access, 0, '0') end
    -- Neither record of this pair can change any more: keep the index sets small. (On a
    -- cluster a subject set lists grants, not tokens, and lives in another slot.)
    local members = {'r:' .. ARGV[3], 't:' .. r[2]}
    redis.call('SREM', grant_set(r[3]), members[1], members[2])
    if tag == '' and r[7] then
      redis.call('SREM', prefix .. 's:' .. r[7], members[1], members[2])
    end
    return {1, v}
  end
end
local m = redis.call('GET', KEYS[2])
if m then
  local marker = cmsgpack.unpack(m)
  if marker[1] > now then
    local changed = revoke_set(grant_set(marker[2]), prefix, tag, now, tonumber(ARGV[4]))
    return {2, marker[2], changed}
  end
end
return {0}
"""

# KEYS: grant set. ARGV: now, key prefix, flag ms, tag. Returns how many records changed.
REVOKE_GRANT = _REVOKE_SET + """
return revoke_set(KEYS[1], ARGV[2], ARGV[4], tonumber(ARGV[1]), tonumber(ARGV[3]))
"""

# KEYS: subject set (single Redis only). ARGV: now, key prefix. Returns how many records
# changed.
REVOKE_SUBJECT = _REVOKE_SET + """
return revoke_set(KEYS[1], ARGV[2], '', tonumber(ARGV[1]), nil)
"""

# KEYS: claim. ARGV: now, exp. Returns 1 for the caller that claimed it.
CLAIM_ONCE = """
local now = tonumber(ARGV[1])
local held = redis.call('GET', KEYS[1])
if held and tonumber(held) > now then return 0 end
local exp = tonumber(ARGV[2])
redis.call('SET', KEYS[1], ARGV[2], 'EX', math.max(exp - now, 1))
return 1
"""

# KEYS: counter of one window. ARGV: amount, seconds left in the window.
HIT = """
local amount = tonumber(ARGV[1])
if amount == 0 then return tonumber(redis.call('GET', KEYS[1]) or '0') end
local value = redis.call('INCRBY', KEYS[1], amount)
if redis.call('TTL', KEYS[1]) < 0 then redis.call('EXPIRE', KEYS[1], ARGV[2]) end
return value
"""


# Imports (``redis_transfer.py``, ``cluster_transfer.py``): each script writes a list of
# records, in one step. ``KEYS`` holds each record's own keys, which on a cluster share
# its slot (the caller groups records by slot); the index sets to update are named in
# ``ARGV`` (``''``: none here). Each returns how many records changed the store.
# Security state only moves forward: a live revocation, tombstone, reuse marker, claim or
# revoked-grant flag here is never undone, and a merged lifetime is the later one.
_IMPORT = """
local now = tonumber(ARGV[1])
local changed = 0
local function live(v)
  return v and cmsgpack.unpack(v)[1] > now
end
local function index(set, member, ttl)
  if set == '' then return end
  redis.call('SADD', set, member)
  if redis.call('PTTL', set) < ttl * 1000 then redis.call('EXPIRE', set, ttl) end
end
local function flagged(set)
  return set ~= '' and redis.call('SISMEMBER', set, 'x') == 1
end
"""

# KEYS: per record code, tombstone. ARGV: now, then per record value, ttl, subject
# member, subject set. A code with a live tombstone here was consumed here: not stored.
IMPORT_CODES = _IMPORT + """
for i = 1, #KEYS / 2 do
  local code, tomb = KEYS[2 * i - 1], KEYS[2 * i]
  local a = 4 * i - 2
  local value, ttl = ARGV[a], tonumber(ARGV[a + 1])
  if not live(redis.call('GET', tomb)) and redis.call('GET', code) ~= value then
    redis.call('SET', code, value, 'EX', ttl)
    index(ARGV[a + 3], ARGV[a + 2], ttl)
    changed = changed + 1
  end
end
return changed
"""

# KEYS: per record tombstone, code. ARGV: now, then per record exp, grant_id, client_id.
# The tombstone lives until the later of both expiries; a live code of the same hash goes
# (it was consumed in the source), as a take would remove it.
IMPORT_CONSUMED_CODES = _IMPORT + """
for i = 1, #KEYS / 2 do
  local tomb, code = KEYS[2 * i - 1], KEYS[2 * i]
  local a = 3 * i - 1
  local exp, grant, client = tonumber(ARGV[a]), ARGV[a + 1], ARGV[a + 2]
  local same = false
  local old = redis.call('GET', tomb)
  if old then
    local t = cmsgpack.unpack(old)
    if t[1] > now then
      exp = math.max(exp, t[1])
      same = t[1] == exp and t[2] == grant and t[3] == client
    end
  end
  if not same then
    redis.call('SET', tomb, cmsgpack.pack({exp, grant, client}), 'EX', exp - now)
  end
  local c = redis.call('GET', code)
  if c then redis.call('DEL', code) end
  if not same or live(c) then changed = changed + 1 end
end
return changed
"""

# KEYS: per record access token. ARGV: now, then per record value, ttl, member, grant set,
# subject set. A token revoked here, or of a grant revoked here (``x``), is stored revoked.
IMPORT_ACCESS = _IMPORT + """
for i = 1, #KEYS do
  local a = 5 * i - 3
  local value, ttl, member = ARGV[a], tonumber(ARGV[a + 1]), ARGV[a + 2]
  local grant, subject = ARGV[a + 3], ARGV[a + 4]
  local old = redis.call('GET', KEYS[i])
  if (old and string.sub(old, 1, 1) == '0' and live(string.sub(old, 2))) or flagged(grant) then
    value = '0' .. string.sub(value, 2)
  end
  if old ~= value then
    redis.call('SET', KEYS[i], value, 'EX', ttl)
    index(grant, member, ttl)
    index(subject, member, ttl)
    changed = changed + 1
  end
end
return changed
"""

# KEYS: per record refresh token, reuse marker. ARGV: now, then per record value, ttl,
# member, grant set, subject set. A token with a live marker here (rotated here) or of a
# grant revoked here is not stored.
IMPORT_REFRESH = _IMPORT + """
for i = 1, #KEYS / 2 do
  local key, marker = KEYS[2 * i - 1], KEYS[2 * i]
  local a = 5 * i - 3
  local value, ttl, member = ARGV[a], tonumber(ARGV[a + 1]), ARGV[a + 2]
  local grant, subject = ARGV[a + 3], ARGV[a + 4]
  if not live(redis.call('GET', marker)) and not flagged(grant)
      and redis.call('GET', key) ~= value then
    redis.call('SET', key, value, 'EX', ttl)
    index(grant, member, ttl)
    index(subject, member, ttl)
    changed = changed + 1
  end
end
return changed
"""

# KEYS: per record reuse marker, refresh token. ARGV: now, the subject sets' key prefix
# (single Redis: they list tokens; '' on a cluster, where they list grants), then per
# record exp, grant_id, member, grant set. The marker lives until the later of both
# expiries; a live refresh token of the same hash goes (it was rotated in the source),
# with its index entries, as a rotation would remove it.
IMPORT_MARKERS = _IMPORT + """
local subjects = ARGV[2]
for i = 1, #KEYS / 2 do
  local marker, refresh = KEYS[2 * i - 1], KEYS[2 * i]
  local a = 4 * i - 1
  local exp, grant, member, set = tonumber(ARGV[a]), ARGV[a + 1], ARGV[a + 2], ARGV[a + 3]
  local same = false
  local old = redis.call('GET', marker)
  if old then
    local m = cmsgpack.unpack(old)
    if m[1] > now then
      exp = math.max(exp, m[1])
      same = m[1] == exp and m[2] == grant
    end
  end
  if not same then
    redis.call('SET', marker, cmsgpack.pack({exp, grant}), 'EX', exp - now)
  end
  local r = redis.call('GET', refresh)
  if r then
    redis.call('DEL', refresh)
    redis.call('SREM', set, member)
    local sub = cmsgpack.unpack(r)[7]
    if subjects ~= '' and sub then redis.call('SREM', subjects .. sub, member) end
  end
  if not same or live(r) then changed = changed + 1 end
end
return changed
"""

# KEYS: per record claim. ARGV: now, then per record exp. A live claim is only lengthened.
IMPORT_CLAIMS = _IMPORT + """
for i = 1, #KEYS do
  local exp = tonumber(ARGV[i + 1])
  local held = tonumber(redis.call('GET', KEYS[i]) or '0')
  if held <= now or held < exp then
    redis.call('SET', KEYS[i], ARGV[i + 1], 'EX', exp - now)
    changed = changed + 1
  end
end
return changed
"""


# Clients (``redis_clients.py``). Every key of the part carries the hash tag ``{cl}``, so on
# a cluster all of them live in one slot and each script below runs there, atomically:
# ``Pcl:{cl}<client_id>`` a client (hash: ``v`` version, ``d`` the document, ``r`` its
# resource_uri or '' / absent for none),
# ``Pclr:{cl}<resource_uri>`` the id of the client with that resource_uri (RFC 8707), kept
# by the same scripts that write and delete clients, so it is never out of step,
# ``Pcls:{cl}`` the sorted set of client ids (score 0: ordered by id, for keyset paging),
# ``Pia:{cl}<digest>`` an initial access token (hash: ``u`` uses left, ``c`` created at,
# ``e`` expires at or ''), ``Pias:{cl}`` the sorted set of their digests. Clients have no
# TTL (they live until deleted); an initial access token with an expiry has one.

# KEYS: client, ids. ARGV: client id, document, the resource pointers' key head
# (``Pclr:{cl}``), resource_uri or ''. Returns 1 when created, 0 when the id is taken, 2 when
# another client has the resource_uri.
CREATE_CLIENT = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local uri = ARGV[4]
if uri ~= '' and redis.call('EXISTS', ARGV[3] .. uri) == 1 then return 2 end
redis.call('HSET', KEYS[1], 'v', 1, 'd', ARGV[2], 'r', uri)
if uri ~= '' then redis.call('SET', ARGV[3] .. uri, ARGV[1]) end
redis.call('ZADD', KEYS[2], 0, ARGV[1])
return 1
"""

# KEYS: client. ARGV: expected version, new version, document, the resource pointers' key
# head, the new resource_uri or '', client id. Returns 1 when replaced, 0 when the stored
# version differs, -1 when there is no client, 2 when another client has the resource_uri.
REPLACE_CLIENT = """
local held = redis.call('HMGET', KEYS[1], 'v', 'r')
if not held[1] then return -1 end
if held[1] ~= ARGV[1] then return 0 end
local uri, id = ARGV[5], ARGV[6]
if uri ~= '' then
  local owner = redis.call('GET', ARGV[4] .. uri)
  if owner and owner ~= id then return 2 end
end
local old = held[2]
if old and old ~= '' and old ~= uri and redis.call('GET', ARGV[4] .. old) == id then
  redis.call('DEL', ARGV[4] .. old)
end
if uri ~= '' then redis.call('SET', ARGV[4] .. uri, id) end
redis.call('HSET', KEYS[1], 'v', ARGV[2], 'd', ARGV[3], 'r', uri)
return 1
"""

# KEYS: client, ids. ARGV: client id, the resource pointers' key head. Returns 1 when a
# client was deleted.
DELETE_CLIENT = """
local old = redis.call('HGET', KEYS[1], 'r')
if old and old ~= '' and redis.call('GET', ARGV[2] .. old) == ARGV[1] then
  redis.call('DEL', ARGV[2] .. old)
end
local n = redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
return n
"""

# KEYS: resource pointer. ARGV: the clients' key head, resource_uri. Returns the document of
# the client the pointer names, or false.
FIND_CLIENT_BY_RESOURCE = """
local id = redis.call('GET', KEYS[1])
if not id then return false end
local held = redis.call('HMGET', ARGV[1] .. id, 'd', 'r')
if held[2] ~= ARGV[2] then return false end
return held[1]
"""

# KEYS: ids. ARGV: the clients' key head (``Pcl:{cl}``), the lowest id ('-' or '(' .. cursor),
# limit. Returns {1 when more ids follow, document, ...}.
LIST_CLIENTS = """
local limit = tonumber(ARGV[3])
local ids = redis.call('ZRANGEBYLEX', KEYS[1], ARGV[2], '+', 'LIMIT', 0, limit + 1)
local out = {0}
if #ids > limit then out[1] = 1 end
for i = 1, math.min(#ids, limit) do
  local d = redis.call('HGET', ARGV[1] .. ids[i], 'd')
  if d then out[#out + 1] = d end
end
return out
"""

# KEYS: ids. ARGV: the clients' key head, the resource pointers' key head, then per record
# client id, version, document, resource_uri or ''. Writes each client as given unless it is
# stored identically and moves its resource pointer; returns how many changed, or -1 (and
# writes nothing) when a record's resource_uri is held by another client.
IMPORT_CLIENTS = """
local owners = {}
local function owner(uri)
  local o = owners[uri]
  if o == nil then o = redis.call('GET', ARGV[2] .. uri) end
  return o
end
for i = 3, #ARGV, 4 do
  local id, uri = ARGV[i], ARGV[i + 3]
  local old = redis.call('HGET', ARGV[1] .. id, 'r')
  if old and old ~= '' and owner(old) == id then owners[old] = false end
  if uri ~= '' then
    local o = owner(uri)
    if o and o ~= id then return -1 end
    owners[uri] = id
  end
end
local changed = 0
for i = 3, #ARGV, 4 do
  local id, uri = ARGV[i], ARGV[i + 3]
  local key = ARGV[1] .. id
  local held = redis.call('HMGET', key, 'v', 'd', 'r')
  if held[3] and held[3] ~= '' and held[3] ~= uri
      and redis.call('GET', ARGV[2] .. held[3]) == id then
    redis.call('DEL', ARGV[2] .. held[3])
  end
  if uri ~= '' then redis.call('SET', ARGV[2] .. uri, id) end
  if held[1] ~= ARGV[i + 1] or held[2] ~= ARGV[i + 2] or (held[3] or '') ~= uri then
    redis.call('HSET', key, 'v', ARGV[i + 1], 'd', ARGV[i + 2], 'r', uri)
    redis.call('ZADD', KEYS[1], 0, id)
    changed = changed + 1
  end
end
return changed
"""

# An initial access token is live while it has uses left and ``e`` is '' or after ``now``.
_INITIAL = """
local function live_token(key, now)
  local t = redis.call('HMGET', key, 'u', 'e')
  if not t[1] or tonumber(t[1]) <= 0 then return nil end
  if t[2] ~= '' and tonumber(t[2]) <= now then return nil end
  return tonumber(t[1])
end
local function put_token(key, set, digest, uses, created, expires, now)
  redis.call('DEL', key)
  redis.call('HSET', key, 'u', uses, 'c', created, 'e', expires)
  if expires ~= '' then redis.call('EXPIRE', key, math.max(tonumber(expires) - now, 1)) end
  redis.call('ZADD', set, 0, digest)
end
"""

# KEYS: token, digests. ARGV: now, digest, uses, created, expires ('' for none).
# Replaces any token of the digest; a token that is not live is not kept.
SAVE_INITIAL_TOKEN = _INITIAL + """
local now = tonumber(ARGV[1])
local uses = tonumber(ARGV[3])
if uses > 0 and (ARGV[5] == '' or tonumber(ARGV[5]) > now) then
  put_token(KEYS[1], KEYS[2], ARGV[2], uses, ARGV[4], ARGV[5], now)
else
  redis.call('DEL', KEYS[1])
  redis.call('ZREM', KEYS[2], ARGV[2])
end
return 0
"""

# KEYS: token, digests. ARGV: now, digest. Returns 1 when a use was spent; the last use
# removes the token.
USE_INITIAL_TOKEN = _INITIAL + """
local now = tonumber(ARGV[1])
local uses = live_token(KEYS[1], now)
if not uses then return 0 end
if uses == 1 then
  redis.call('DEL', KEYS[1])
  redis.call('ZREM', KEYS[2], ARGV[2])
else
  redis.call('HINCRBY', KEYS[1], 'u', -1)
end
return 1
"""

# KEYS: digests. ARGV: now, the tokens' key head (``Pia:{cl}``), the lowest digest
# ('-' or '(' .. cursor), limit. Returns {last digest examined or '', {digest, uses,
# created, expires}, ...}: at most ``limit`` live tokens, '' when no digest follows.
EXPORT_INITIAL_TOKENS = _INITIAL + """
local now = tonumber(ARGV[1])
local limit = tonumber(ARGV[4])
local digests = redis.call('ZRANGEBYLEX', KEYS[1], ARGV[3], '+', 'LIMIT', 0, limit + 1)
local out = {''}
for i = 1, math.min(#digests, limit) do
  local key = ARGV[2] .. digests[i]
  if live_token(key, now) then
    local t = redis.call('HMGET', key, 'u', 'c', 'e')
    out[#out + 1] = {digests[i], t[1], t[2], t[3]}
  end
end
if #digests > limit then out[1] = digests[limit] end
return out
"""

# KEYS: digests. ARGV: now, the tokens' key head, then per record digest, uses, created,
# expires. A token held here keeps the fewer uses; returns how many records changed.
IMPORT_INITIAL_TOKENS = _INITIAL + """
local now = tonumber(ARGV[1])
local changed = 0
for i = 3, #ARGV, 4 do
  local key = ARGV[2] .. ARGV[i]
  local held = live_token(key, now)
  local uses = tonumber(ARGV[i + 1])
  if not held or held > uses then
    put_token(key, KEYS[1], ARGV[i], uses, ARGV[i + 2], ARGV[i + 3], now)
    changed = changed + 1
  end
end
return changed
"""

# KEYS: digests. ARGV: now, the tokens' key head, the lowest digest, batch size.
# Removes up to a batch of tokens that can no longer be used from the index, deleting
# those whose key Redis has not expired yet. Returns {next lowest digest or '', deleted}.
PURGE_INITIAL_TOKENS = _INITIAL + """
local now = tonumber(ARGV[1])
local size = tonumber(ARGV[4])
local digests = redis.call('ZRANGEBYLEX', KEYS[1], ARGV[3], '+', 'LIMIT', 0, size)
local deleted = 0
for i = 1, #digests do
  local key = ARGV[2] .. digests[i]
  if not live_token(key, now) then
    deleted = deleted + redis.call('DEL', key)
    redis.call('ZREM', KEYS[1], digests[i])
  end
end
if #digests < size then return {'', deleted} end
return {'(' .. digests[#digests], deleted}
"""


# Device authorizations (``redis_device.py``, RFC 8628). Every key of the part carries the
# hash tag ``{dv}``, so on a cluster they all live in one slot and each script below runs
# there, atomically, with every key it needs: a save checks both codes and writes both keys
# in one step, and a poll that hands out an approval removes the record and its pointer in
# the same step. ``Pdv:{dv}<device code hash>`` a record (hash: ``e`` exp, ``u`` user code
# hash, ``i`` interval, ``p`` last poll, ``s`` status, ``a`` the record as saved (JSON),
# ``w`` the decision (JSON, '' while pending)); ``Pdvu:{dv}<user code hash>`` the device
# code hash of the record holding the user code; ``Pdvs:{dv}`` the sorted set of device code
# hashes (score 0: ordered by hash, for keyset paging) and ``Pdve:{dv}`` the same hashes
# scored by ``exp`` (counts and purge). Records and pointers have a TTL (their ``exp``);
# liveness is decided by the caller's ``now``, never by the TTL.
_DEVICE = """
local function live_device(key, now)
  local e = redis.call('HGET', key, 'e')
  return e and tonumber(e) > now
end
-- The record at key, the pointer of its user code (when it names this record) and its
-- index entries, gone. Returns 1 when the record's key existed.
local function drop_device(key, hash, pointer_head, ids, by_exp)
  local u = redis.call('HGET', key, 'u')
  if u then
    local pointer = pointer_head .. u
    if redis.call('GET', pointer) == hash then redis.call('DEL', pointer) end
  end
  local n = redis.call('DEL', key)
  redis.call('ZREM', ids, hash)
  redis.call('ZREM', by_exp, hash)
  return n
end
-- Frees the place of a record about to be written: whatever is left (not live) at its
-- device code, and the record its user code's pointer names.
local function clear_device(head, pointer_head, ids, by_exp, hash, user_hash)
  local key = head .. hash
  if redis.call('EXISTS', key) == 1 then drop_device(key, hash, pointer_head, ids, by_exp) end
  local other = redis.call('GET', pointer_head .. user_hash)
  if other then drop_device(head .. other, other, pointer_head, ids, by_exp) end
end
-- a[i..i+8]: device code hash, user code hash, exp, ttl, interval, last poll, status,
-- record, decision.
local function put_device(head, pointer_head, ids, by_exp, a, i)
  local key = head .. a[i]
  redis.call('HSET', key, 'e', a[i + 2], 'u', a[i + 1], 'i', a[i + 4], 'p', a[i + 5],
             's', a[i + 6], 'a', a[i + 7], 'w', a[i + 8])
  redis.call('EXPIRE', key, a[i + 3])
  redis.call('SET', pointer_head .. a[i + 1], a[i], 'EX', a[i + 3])
  redis.call('ZADD', ids, 0, a[i])
  redis.call('ZADD', by_exp, a[i + 2], a[i])
end
local function read_device(key)
  return redis.call('HMGET', key, 'a', 'w', 'i', 'p', 's')
end
-- The key of the live record holding the user code its pointer is for, or nil.
local function by_user_code(pointer, head, user_hash, now)
  local hash = redis.call('GET', pointer)
  if not hash then return nil end
  local key = head .. hash
  if not live_device(key, now) or redis.call('HGET', key, 'u') ~= user_hash then
    return nil
  end
  return key
end
"""

# KEYS: record, user code pointer, ids, by exp. ARGV: now, record head, pointer head, then
# the record (device code hash, user code hash, exp, ttl, interval, last poll, status,
# record, decision). Returns 1 when saved, 0 when a live record holds either code.
SAVE_DEVICE = _DEVICE + """
local now = tonumber(ARGV[1])
if live_device(KEYS[1], now) then return 0 end
local other = redis.call('GET', KEYS[2])
if other and live_device(ARGV[2] .. other, now) then return 0 end
clear_device(ARGV[2], ARGV[3], KEYS[3], KEYS[4], ARGV[4], ARGV[5])
put_device(ARGV[2], ARGV[3], KEYS[3], KEYS[4], ARGV, 4)
return 1
"""

# KEYS: user code pointer. ARGV: now, record head, user code hash.
# Returns {record, decision, interval, last poll, status} of the live record, or {}.
FIND_DEVICE = _DEVICE + """
local key = by_user_code(KEYS[1], ARGV[2], ARGV[3], tonumber(ARGV[1]))
if not key then return {} end
return read_device(key)
"""

# KEYS: user code pointer. ARGV: now, record head, user code hash, status, decision.
# Decides a live pending record; returns it as FIND_DEVICE does, or {} (none, or decided).
DECIDE_DEVICE = _DEVICE + """
local key = by_user_code(KEYS[1], ARGV[2], ARGV[3], tonumber(ARGV[1]))
if not key or redis.call('HGET', key, 's') ~= 'pending' then return {} end
redis.call('HSET', key, 's', ARGV[4], 'w', ARGV[5])
return read_device(key)
"""

# KEYS: record, ids, by exp. ARGV: now, pointer head, device code hash, slow-down seconds.
# Returns {0} (no live record), {1, new interval} (slow down), {2} (pending), {3} (denied:
# removed) or {4, {record, decision, interval, last poll, status}} (approved: removed).
POLL_DEVICE = _DEVICE + """
local now = tonumber(ARGV[1])
local f = redis.call('HMGET', KEYS[1], 'e', 'i', 'p', 's')
if not f[1] or tonumber(f[1]) <= now then return {0} end
local interval = tonumber(f[2])
local last = tonumber(f[3])
if last ~= 0 and now < last + interval then
  interval = interval + tonumber(ARGV[4])
  redis.call('HSET', KEYS[1], 'i', interval, 'p', ARGV[1])
  return {1, interval}
end
if f[4] == 'pending' then
  redis.call('HSET', KEYS[1], 'p', ARGV[1])
  return {2}
end
local record = read_device(KEYS[1])
drop_device(KEYS[1], ARGV[3], ARGV[2], KEYS[2], KEYS[3])
if f[4] == 'denied' then return {3} end
return {4, record}
"""

# KEYS: ids. ARGV: now, record head, the lowest hash ('-' or '(' .. cursor), limit.
# Returns {last hash examined or '', {record, decision, interval, last poll, status}, ...}:
# at most ``limit`` live records, '' when no hash follows.
EXPORT_DEVICE = _DEVICE + """
local now = tonumber(ARGV[1])
local limit = tonumber(ARGV[4])
local hashes = redis.call('ZRANGEBYLEX', KEYS[1], ARGV[3], '+', 'LIMIT', 0, limit + 1)
local out = {''}
for i = 1, math.min(#hashes, limit) do
  local key = ARGV[2] .. hashes[i]
  if live_device(key, now) then out[#out + 1] = read_device(key) end
end
if #hashes > limit then out[1] = hashes[limit] end
return out
"""

# KEYS: ids, by exp. ARGV: now, record head, pointer head, then per record the nine fields
# of SAVE_DEVICE. A live record held here is replaced only when it is pending and the new
# one decided (a decision is never undone, an answered record never comes back); a user
# code held by another live record is left to it. Returns how many records changed.
IMPORT_DEVICE = _DEVICE + """
local now = tonumber(ARGV[1])
local head, pointer_head = ARGV[2], ARGV[3]
local changed = 0
for i = 4, #ARGV, 9 do
  local key = head .. ARGV[i]
  local write = true
  if live_device(key, now) then
    write = redis.call('HGET', key, 's') == 'pending' and ARGV[i + 6] ~= 'pending'
  end
  if write then
    local other = redis.call('GET', pointer_head .. ARGV[i + 1])
    write = not other or other == ARGV[i] or not live_device(head .. other, now)
  end
  if write then
    clear_device(head, pointer_head, KEYS[1], KEYS[2], ARGV[i], ARGV[i + 1])
    put_device(head, pointer_head, KEYS[1], KEYS[2], ARGV, i)
    changed = changed + 1
  end
end
return changed
"""

# KEYS: ids, by exp. ARGV: now, record head, pointer head, batch size.
# Removes up to a batch of records expired by ``now`` (with their pointers and index
# entries). Returns {hashes examined, records deleted (keys Redis had not expired yet)}.
PURGE_DEVICE = _DEVICE + """
local now = tonumber(ARGV[1])
local hashes = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, tonumber(ARGV[4]))
local deleted = 0
for i = 1, #hashes do
  local key = ARGV[2] .. hashes[i]
  local e = redis.call('HGET', key, 'e')
  if e and tonumber(e) > now then
    -- A score behind its record (never written so): set right, so the purge moves on.
    redis.call('ZADD', KEYS[2], e, hashes[i])
  else
    deleted = deleted + drop_device(key, hashes[i], ARGV[3], KEYS[1], KEYS[2])
  end
end
return {#hashes, deleted}
"""


# Account tokens (``redis_account_tokens.py``): the single-use links mailed for a password
# reset or an email verification. Every key of the part carries the hash tag ``{at}``, so
# on a cluster they all live in one slot: a take knows only the token's hash and a revoke
# only its user, so no tag derived from either could put a token and its user's index in
# one slot. ``Pat:{at}<hash>`` a token (hash: ``k`` kind, ``u`` user id, ``e`` exp, ``a``
# the record (JSON)); ``Patu:{at}<kind>:<user id>`` the hashes of one user's tokens of one
# kind, scored by ``exp``; ``Pats:{at}`` every hash (score 0: ordered by hash, for keyset
# paging) and ``Pate:{at}`` the same hashes scored by ``exp`` (counts and purge). A token
# expires with its record (TTL ``exp - now``); each index lives as long as its latest
# token. Liveness is decided by the caller's ``now``, never by the TTL.
_ACCOUNT_TOKEN = """
local function live_token(key, now)
  local e = redis.call('HGET', key, 'e')
  return e and tonumber(e) > now
end
-- The token at key and its index entries, gone. Returns 1 when the token's key existed.
local function drop_token(key, hash, user_head, ids, by_exp)
  local f = redis.call('HMGET', key, 'k', 'u')
  if f[1] and f[2] then redis.call('ZREM', user_head .. f[1] .. ':' .. f[2], hash) end
  local n = redis.call('DEL', key)
  redis.call('ZREM', ids, hash)
  redis.call('ZREM', by_exp, hash)
  return n
end
-- Make key live at least ttl seconds, never shorter than it did.
local function lengthen(key, ttl)
  redis.call('EXPIRE', key, ttl, 'NX')
  redis.call('EXPIRE', key, ttl, 'GT')
end
-- a[i..i+5]: hash, kind, user id, exp, ttl, record. Replaces whatever the hash held.
local function put_token(head, user_head, ids, by_exp, a, i)
  local key = head .. a[i]
  if redis.call('EXISTS', key) == 1 then drop_token(key, a[i], user_head, ids, by_exp) end
  redis.call('HSET', key, 'k', a[i + 1], 'u', a[i + 2], 'e', a[i + 3], 'a', a[i + 5])
  redis.call('EXPIRE', key, a[i + 4])
  local index = user_head .. a[i + 1] .. ':' .. a[i + 2]
  redis.call('ZADD', index, a[i + 3], a[i])
  lengthen(index, a[i + 4])
  redis.call('ZADD', ids, 0, a[i])
  lengthen(ids, a[i + 4])
  redis.call('ZADD', by_exp, a[i + 3], a[i])
  lengthen(by_exp, a[i + 4])
end
"""

# KEYS: token, user index, ids, by exp. ARGV: now, token head, user index head, then the
# token (hash, kind, user id, exp, ttl, record).
SAVE_ACCOUNT_TOKEN = _ACCOUNT_TOKEN + """
put_token(ARGV[2], ARGV[3], KEYS[3], KEYS[4], ARGV, 4)
return 1
"""

# KEYS: token, ids, by exp. ARGV: now, kind, user index head, hash.
# Removes the live token of this kind and returns its record; nil for none (a token of
# another kind, or expired, is left as it is).
TAKE_ACCOUNT_TOKEN = _ACCOUNT_TOKEN + """
local f = redis.call('HMGET', KEYS[1], 'k', 'e', 'a')
if f[1] ~= ARGV[2] or tonumber(f[2]) <= tonumber(ARGV[1]) then return false end
drop_token(KEYS[1], ARGV[4], ARGV[3], KEYS[2], KEYS[3])
return f[3]
"""

# KEYS: user index, ids, by exp. ARGV: now, token head, user index head, kind, user id.
# Removes every token of the user of this kind (expired ones too: they are absent to every
# reader already); returns how many were live.
REVOKE_ACCOUNT_TOKENS = _ACCOUNT_TOKEN + """
local now = tonumber(ARGV[1])
local hashes = redis.call('ZRANGE', KEYS[1], 0, -1)
local live = 0
for i = 1, #hashes do
  local key = ARGV[2] .. hashes[i]
  local f = redis.call('HMGET', key, 'k', 'u', 'e')
  -- An entry whose hash now holds another user's token (a save replaced it) is stale.
  if f[1] == ARGV[4] and f[2] == ARGV[5] then
    if tonumber(f[3]) > now then live = live + 1 end
    drop_token(key, hashes[i], ARGV[3], KEYS[2], KEYS[3])
  end
end
redis.call('DEL', KEYS[1])
return live
"""

# KEYS: ids. ARGV: now, token head, the lowest hash ('-' or '(' .. cursor), limit.
# Returns {last hash examined or '', record, ...}: at most ``limit`` live records, '' when
# no hash follows.
EXPORT_ACCOUNT_TOKENS = _ACCOUNT_TOKEN + """
local now = tonumber(ARGV[1])
local limit = tonumber(ARGV[4])
local hashes = redis.call('ZRANGEBYLEX', KEYS[1], ARGV[3], '+', 'LIMIT', 0, limit + 1)
local out = {''}
for i = 1, math.min(#hashes, limit) do
  local key = ARGV[2] .. hashes[i]
  if live_token(key, now) then out[#out + 1] = redis.call('HGET', key, 'a') end
end
if #hashes > limit then out[1] = hashes[limit] end
return out
"""

# KEYS: ids, by exp. ARGV: now, token head, user index head, then per record the six
# fields of SAVE_ACCOUNT_TOKEN. A live token held here is left as it is. Returns how many
# records were written.
IMPORT_ACCOUNT_TOKENS = _ACCOUNT_TOKEN + """
local now = tonumber(ARGV[1])
local written = 0
for i = 4, #ARGV, 6 do
  if not live_token(ARGV[2] .. ARGV[i], now) then
    put_token(ARGV[2], ARGV[3], KEYS[1], KEYS[2], ARGV, i)
    written = written + 1
  end
end
return written
"""

# KEYS: ids, by exp. ARGV: now, token head, user index head, batch size.
# Removes up to a batch of tokens expired by ``now`` (with their index entries). Returns
# {hashes examined, tokens deleted (keys Redis had not expired yet)}.
PURGE_ACCOUNT_TOKENS = _ACCOUNT_TOKEN + """
local now = tonumber(ARGV[1])
local hashes = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, tonumber(ARGV[4]))
local deleted = 0
for i = 1, #hashes do
  local key = ARGV[2] .. hashes[i]
  local e = redis.call('HGET', key, 'e')
  if e and tonumber(e) > now then
    -- A score behind its token (never written so): set right, so the purge moves on.
    redis.call('ZADD', KEYS[2], e, hashes[i])
  else
    deleted = deleted + drop_token(key, hashes[i], ARGV[3], KEYS[1], KEYS[2])
  end
end
return {#hashes, deleted}
"""
