"""Limits shared through Redis: every router process records its sends in the same windows and sees the same
cool-downs.

A window is a sorted set of sends (member: the request's ticket, score: when) and a hash of their sizes with
their running sum, kept by atomic Lua scripts on Redis's own clock (TIME), so routers on machines with
different clocks agree. One round trip a request: the take script also answers "cooling down for N s".
The rules are those of `engine.gateway.limits.SlidingWindow`.
"""

from __future__ import annotations

from typing import Any

from redis.asyncio import Redis

from core.redis_retry import API_PATIENCE_S, patient_redis
from engine.gateway import EXPIRY_EPSILON_S, REQUEST_WINDOW_S, TOKEN_WINDOW_S, WINDOW_MARGIN_S, SharedLevels

# Lua shared by the scripts: the clock, and dropping the sends that left a window (in chunks: unpack() has a
# limit). `used` returns what the window holds now.
_WINDOW_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local function used(log, sizes, span)
  while true do
    local gone = redis.call('ZRANGEBYSCORE', log, '-inf', '(' .. tostring(now - span), 'LIMIT', 0, 500)
    if #gone == 0 then break end
    local total = 0
    for _, v in ipairs(redis.call('HMGET', sizes, unpack(gone))) do total = total + (tonumber(v) or 0) end
    redis.call('HDEL', sizes, unpack(gone))
    redis.call('ZREM', log, unpack(gone))
    redis.call('HINCRBYFLOAT', sizes, '_sum', -total)
  end
  if redis.call('ZCARD', log) == 0 then redis.call('DEL', sizes) return 0 end
  return tonumber(redis.call('HGET', sizes, '_sum') or '0')
end
"""

# KEYS[1] cool-down key, then (log, sizes) per window. ARGV[1] the ticket, then (limit, span, amount) per window.
# Returns the seconds to wait ("0": recorded).
_TAKE = _WINDOW_LUA + f"""
local cooling = tonumber(redis.call('GET', KEYS[1]) or '0') - now
if cooling > 0 then return tostring(cooling) end
local wait = 0
for i = 1, (#KEYS - 1) / 2 do
  local log, sizes = KEYS[2*i], KEYS[2*i+1]
  local limit, span, amount = tonumber(ARGV[3*i-1]), tonumber(ARGV[3*i]), tonumber(ARGV[3*i+1])
  local excess = used(log, sizes, span) + math.min(amount, limit) - limit
  local start = 0
  while excess > 0 do  -- the oldest sends whose leaving makes room, as SlidingWindow.wait_s
    local oldest = redis.call('ZRANGE', log, start, start + 99, 'WITHSCORES')
    if #oldest == 0 then break end
    for j = 1, #oldest, 2 do
      excess = excess - (tonumber(redis.call('HGET', sizes, oldest[j])) or 0)
      if excess <= 0 then
        wait = math.max(wait, tonumber(oldest[j+1]) + span - now + {EXPIRY_EPSILON_S})
        break
      end
    end
    start = start + 100
  end
end
if wait > 0 then return tostring(wait) end
for i = 1, (#KEYS - 1) / 2 do
  local log, sizes, span, amount = KEYS[2*i], KEYS[2*i+1], tonumber(ARGV[3*i]), ARGV[3*i+1]
  redis.call('ZADD', log, now, ARGV[1])
  redis.call('HSET', sizes, ARGV[1], amount)
  redis.call('HINCRBYFLOAT', sizes, '_sum', amount)
  redis.call('EXPIRE', log, math.ceil(span) + 1)
  redis.call('EXPIRE', sizes, math.ceil(span) + 1)
end
return '0'
"""

# KEYS[1] cool-down key; ARGV[1] seconds from now. The later deadline wins. Returns the seconds left.
_COOL = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local deadline = math.max(tonumber(redis.call('GET', KEYS[1]) or '0'), now + tonumber(ARGV[1]))
redis.call('SET', KEYS[1], tostring(deadline), 'EX', math.ceil(deadline - now) + 1)
return tostring(deadline - now)
"""

# KEYS[1] a window's sizes; ARGV[1] the ticket, ARGV[2] its real size. A send that left the window is done.
_SETTLE = """
local old = redis.call('HGET', KEYS[1], ARGV[1])
if old then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
  redis.call('HINCRBYFLOAT', KEYS[1], '_sum', tonumber(ARGV[2]) - tonumber(old))
end
return 1
"""

# KEYS[1] cool-down key, then (log, sizes) per window; ARGV: (limit, span) per window.
# Returns {cool-down seconds left, what each window may still send}, as strings.
_LEVELS = _WINDOW_LUA + """
local out = {tostring(math.max(0, tonumber(redis.call('GET', KEYS[1]) or '0') - now))}
for i = 1, (#KEYS - 1) / 2 do
  local limit, span = tonumber(ARGV[2*i-1]), tonumber(ARGV[2*i])
  out[i + 1] = tostring(math.max(0, limit - used(KEYS[2*i], KEYS[2*i+1], span)))
end
return out
"""


class SharedLimits:
    """The router's SharedCapacity in Redis: windows and cool-downs of deployments (or API keys) under `prefix`."""

    def __init__(self, redis: Redis, *, prefix: str = "rowloom:gw") -> None:
        self.redis = redis
        self.prefix = prefix
        self._take = redis.register_script(_TAKE)
        self._cool = redis.register_script(_COOL)
        self._settle = redis.register_script(_SETTLE)
        self._levels = redis.register_script(_LEVELS)

    @classmethod
    def from_url(cls, url: str, *, prefix: str = "rowloom:gw", patience_s: float | None = API_PATIENCE_S
                 ) -> SharedLimits:
        """Connect lazily to a Redis URL; a call waits out an outage for `patience_s` (None: for ever)."""
        return cls(patient_redis(url, patience_s=patience_s), prefix=prefix)

    def _key(self, name: str, what: str) -> str:
        return f"{self.prefix}:{name}:{what}"

    def _windows(self, name: str, rps: float | None, tpm: int | None, tokens: float = 0.0
                 ) -> list[tuple[str, float, float, float]]:
        """(key, limit, span, amount a request counts) of each window the limits ask for."""
        windows = [("rps", rps, REQUEST_WINDOW_S, 1.0), ("tpm", tpm, TOKEN_WINDOW_S, tokens)]
        return [(self._key(name, what), limit, period + WINDOW_MARGIN_S, amount)
                for what, limit, period, amount in windows if limit]

    async def take(self, name: str, *, rps: float | None, tpm: int | None, tokens: float, ticket: str) -> float:
        """Record one request of `tokens`, named `ticket`, in the windows of `name` (a deployment, or an API key);
        returns 0, or the seconds to wait."""
        keys: list[str] = [self._key(name, "cooldown")]
        args: list[Any] = [ticket]
        for key, limit, span, amount in self._windows(name, rps, tpm, tokens):
            keys += [key, f"{key}:sizes"]
            args += [limit, span, amount]
        return float(await self._take(keys=keys, args=args))

    async def cool_down(self, name: str, seconds: float) -> float:
        """Make the deployment cool down for at least `seconds` everywhere; returns the time left."""
        return float(await self._cool(keys=[self._key(name, "cooldown")], args=[seconds]))

    async def settle_tokens(self, name: str, *, ticket: str, tokens: float) -> None:
        """Replace the request's estimated tokens by what it really used."""
        await self._settle(keys=[f"{self._key(name, 'tpm')}:sizes"], args=[ticket, tokens])

    async def levels(self, name: str, *, rps: float | None, tpm: int | None) -> SharedLevels:
        """The deployment's cool-down left and what its windows may still send, as every process sees them."""
        keys: list[str] = [self._key(name, "cooldown")]
        args: list[Any] = []
        for key, limit, span, _ in self._windows(name, rps, tpm):
            keys += [key, f"{key}:sizes"]
            args += [limit, span]
        values = [float(v) for v in await self._levels(keys=keys, args=args)]
        cooldown, windows = values[0], iter(values[1:])
        return SharedLevels(cooldown, next(windows) if rps else None, next(windows) if tpm else None)

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self.redis.aclose()
