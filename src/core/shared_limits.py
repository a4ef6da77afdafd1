"""Limits shared through Redis: every router process takes from the same buckets and sees the same cool-downs.

Atomic Lua scripts on Redis's own clock (TIME), so routers on machines with different clocks agree. One
round trip a request: the take script also answers "cooling down for N s".
"""

from __future__ import annotations

from typing import Any

from redis.asyncio import Redis

from engine.gateway.capacity import SharedLevels
from engine.gateway.limits import DEPLOYMENT_BURST_S

# KEYS[1] cool-down key, KEYS[2..] bucket keys. ARGV: (rate, capacity, amount) per bucket.
# Returns the seconds to wait ("0": taken).
_TAKE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local cooling = tonumber(redis.call('GET', KEYS[1]) or '0') - now
if cooling > 0 then return tostring(cooling) end
local wait, levels = 0, {}
for i = 2, #KEYS do
  local rate, cap, amount = tonumber(ARGV[3*i-5]), tonumber(ARGV[3*i-4]), tonumber(ARGV[3*i-3])
  local v = redis.call('HMGET', KEYS[i], 'tokens', 'ts')
  local tokens = math.min(cap, (tonumber(v[1]) or cap) + (now - (tonumber(v[2]) or now)) * rate)
  levels[i] = tokens
  local need = math.min(amount, cap) - tokens
  if need > 0 then wait = math.max(wait, need / rate) end
end
if wait > 0 then return tostring(wait) end
for i = 2, #KEYS do
  redis.call('HSET', KEYS[i], 'tokens', levels[i] - tonumber(ARGV[3*i-3]), 'ts', now)
  redis.call('EXPIRE', KEYS[i], 86400)
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

# KEYS[1] bucket key; ARGV[1] tokens to add back (negative: to take). Settles an estimate with real usage.
_SETTLE = """
if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('HINCRBYFLOAT', KEYS[1], 'tokens', ARGV[1]) end
return 1
"""


# KEYS[1] cool-down key, KEYS[2..] bucket keys; ARGV: (rate, capacity) per bucket. Reads only.
# Returns {cool-down seconds left, level of each bucket}, as strings.
_LEVELS = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local out = {tostring(math.max(0, tonumber(redis.call('GET', KEYS[1]) or '0') - now))}
for i = 2, #KEYS do
  local rate, cap = tonumber(ARGV[2*i-3]), tonumber(ARGV[2*i-2])
  local v = redis.call('HMGET', KEYS[i], 'tokens', 'ts')
  out[i] = tostring(math.min(cap, (tonumber(v[1]) or cap) + (now - (tonumber(v[2]) or now)) * rate))
end
return out
"""


class SharedLimits:
    """The router's SharedCapacity in Redis: token buckets and cool-downs of deployments under `prefix`."""

    def __init__(self, redis: Redis, *, prefix: str = "rowloom:gw") -> None:
        self.redis = redis
        self.prefix = prefix
        self._take = redis.register_script(_TAKE)
        self._cool = redis.register_script(_COOL)
        self._settle = redis.register_script(_SETTLE)
        self._levels = redis.register_script(_LEVELS)

    @classmethod
    def from_url(cls, url: str, *, prefix: str = "rowloom:gw") -> SharedLimits:
        """Connect lazily to a Redis URL."""
        return cls(Redis.from_url(url), prefix=prefix)

    def _key(self, name: str, what: str) -> str:
        return f"{self.prefix}:{name}:{what}"

    async def take(self, name: str, *, rps: float | None, tpm: int | None, tokens: float,
                   burst_s: float = DEPLOYMENT_BURST_S) -> float:
        """Take one request and `tokens` from the buckets of `name` (a deployment, or an API key); returns 0, or
        the seconds to wait. The request bucket holds `burst_s` seconds of requests."""
        keys = [self._key(name, "cooldown")]
        args: list[Any] = []
        if rps:
            keys.append(self._key(name, "rps"))
            args += [rps, burst_s * rps, 1]
        if tpm:
            keys.append(self._key(name, "tpm"))
            args += [tpm / 60, tpm, tokens]
        return float(await self._take(keys=keys, args=args))

    async def cool_down(self, name: str, seconds: float) -> float:
        """Make the deployment cool down for at least `seconds` everywhere; returns the time left."""
        return float(await self._cool(keys=[self._key(name, "cooldown")], args=[seconds]))

    async def settle_tokens(self, name: str, tokens_back: float) -> None:
        """Give back (or take) tokens once real usage is known."""
        await self._settle(keys=[self._key(name, "tpm")], args=[tokens_back])

    async def levels(self, name: str, *, rps: float | None, tpm: int | None) -> SharedLevels:
        """The deployment's cool-down left and bucket levels, as every process sees them (reads only)."""
        keys = [self._key(name, "cooldown")]
        args: list[Any] = []
        if rps:
            keys.append(self._key(name, "rps"))
            args += [rps, DEPLOYMENT_BURST_S * rps]
        if tpm:
            keys.append(self._key(name, "tpm"))
            args += [tpm / 60, tpm]
        values = [float(v) for v in await self._levels(keys=keys, args=args)]
        cooldown, buckets = values[0], iter(values[1:])
        return SharedLevels(cooldown, next(buckets) if rps else None, next(buckets) if tpm else None)

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self.redis.aclose()
