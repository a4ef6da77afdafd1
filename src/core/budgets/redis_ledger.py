"""Budget counters in Redis, shared by every worker and API process: one Lua script a call, so requests of
all processes are decided one after another.

Keys (under the prefix): `spent:<counter>` the settled cost (expiring with its window), `held:<counter>` a hash
of what each holder holds, `alive:<holder>` present while the holder lives (it expires a lease after the
holder's last call or beat; its holds then stop counting and are dropped).
"""

from __future__ import annotations

from typing import Any

import orjson
from redis.asyncio import Redis

from core.budgets.ledger import EPSILON, HoldRequest, Refusal, Settlement
from core.redis_retry import API_PATIENCE_S, patient_redis

PREFIX = "rowloom:budget:"

# Totals of counters (spent + live holds), computed once a call and kept up to date as requests are taken.
_TOTALS_LUA = """
local prefix = ARGV[1]
local totals, spent = {}, {}
local function total(counter)
  if totals[counter] == nil then
    local s = tonumber(redis.call('GET', prefix .. 'spent:' .. counter) or '0')
    local t = s
    local held = redis.call('HGETALL', prefix .. 'held:' .. counter)
    for i = 1, #held, 2 do
      if redis.call('EXISTS', prefix .. 'alive:' .. held[i]) == 1 then
        t = t + math.max(0, tonumber(held[i + 1]))
      else
        redis.call('HDEL', prefix .. 'held:' .. counter, held[i])
      end
    end
    totals[counter], spent[counter] = t, s
  end
  return totals[counter]
end
"""

# ARGV: prefix, holder, lease ms, settlement {released, spent, keep_s}, requests [[amount, [[counter, limit]]]]
# Returns one entry per request: "" (held) or "check index|spent|held".
_APPLY = _TOTALS_LUA + f"""
local holder = ARGV[2]
redis.call('SET', prefix .. 'alive:' .. holder, '1', 'PX', ARGV[3])
local settle = cjson.decode(ARGV[4])
for counter, amount in pairs(settle[1]) do
  local key = prefix .. 'held:' .. counter
  if tonumber(redis.call('HINCRBYFLOAT', key, holder, -amount)) <= {EPSILON} then redis.call('HDEL', key, holder) end
end
for counter, amount in pairs(settle[2]) do
  local key = prefix .. 'spent:' .. counter
  redis.call('INCRBYFLOAT', key, amount)
  local keep = tonumber(settle[3][counter] or 0)
  if keep > 0 then redis.call('EXPIRE', key, keep) end
end
local out, taken = {{}}, {{}}
for i, r in ipairs(cjson.decode(ARGV[5])) do
  local amount, refused = tonumber(r[1]), ''
  for j, check in ipairs(r[2]) do
    local t = total(check[1])
    if t + amount > tonumber(check[2]) + {EPSILON} then
      refused = (j - 1) .. '|' .. tostring(spent[check[1]]) .. '|' .. tostring(t - spent[check[1]])
      break
    end
  end
  if refused == '' then
    for _, check in ipairs(r[2]) do
      totals[check[1]] = totals[check[1]] + amount
      taken[check[1]] = (taken[check[1]] or 0) + amount
    end
  end
  out[i] = refused
end
for counter, amount in pairs(taken) do
  redis.call('HINCRBYFLOAT', prefix .. 'held:' .. counter, holder, amount)
end
return out
"""

# ARGV: prefix, counters...; returns "spent|held" per counter.
_FIGURES = _TOTALS_LUA + """
local out = {}
for i = 2, #ARGV do
  local t = total(ARGV[i])
  out[i - 1] = tostring(spent[ARGV[i]]) .. '|' .. tostring(t - spent[ARGV[i]])
end
return out
"""


class RedisLedger:
    """The `Ledger` in Redis."""

    def __init__(self, redis: Redis, *, prefix: str = PREFIX) -> None:
        self.redis = redis
        self.prefix = prefix
        self._apply = redis.register_script(_APPLY)
        self._figures = redis.register_script(_FIGURES)

    @classmethod
    def from_url(cls, url: str, *, prefix: str = PREFIX, patience_s: float | None = API_PATIENCE_S) -> RedisLedger:
        """A ledger on the Redis at `url`; a call waits out an outage for `patience_s` (None: for ever)."""
        return cls(patient_redis(url, patience_s=patience_s), prefix=prefix)

    async def apply(self, holder: str, lease_s: float, settlement: Settlement,
                    requests: list[HoldRequest]) -> list[Refusal | None]:
        """Settle, then reserve in order; for each request None (held) or why not."""
        settle = [settlement.released, settlement.spent, settlement.keep_s]
        wanted = [[r.amount, [list(check) for check in r.checks]] for r in requests]
        answer: Any = await self._apply(args=[self.prefix, holder, max(1, round(lease_s * 1000)),
                                              orjson.dumps(settle), orjson.dumps(wanted) if wanted else "[]"])
        return [_refusal(item) for item in (answer if isinstance(answer, list) else [])]

    async def figures(self, counters: list[str]) -> dict[str, tuple[float, float]]:
        """(spent, held by live holders) of each counter."""
        if not counters:
            return {}
        answer: Any = await self._figures(args=[self.prefix, *counters])
        pairs = [_text(item).split("|") for item in answer]
        return {c: (float(spent), max(0.0, float(held))) for c, (spent, held) in zip(counters, pairs, strict=True)}

    async def renew(self, holder: str, lease_s: float) -> None:
        """Keep `holder`'s holds alive for another lease."""
        await self.redis.set(f"{self.prefix}alive:{holder}", "1", px=max(1, round(lease_s * 1000)))

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self.redis.aclose()


def _text(item: Any) -> str:
    return item.decode() if isinstance(item, bytes) else str(item)


def _refusal(item: Any) -> Refusal | None:
    text = _text(item)
    if not text:
        return None
    check, spent, held = text.split("|")
    return Refusal(int(check), float(spent), float(held))
