"""What every source provides."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Protocol

import polars as pl

from engine.errors import InputError
from engine.results.store import Key


@dataclass(frozen=True)
class Batch:
    """Consecutive rows: all original columns in order, and one key per row."""

    frame: pl.DataFrame
    keys: list[Key]


class Source(Protocol):
    """A table read in batches."""

    columns: list[str]
    description: str
    parallel_reads: bool  # batches() may be walked twice at once (the output is then written behind the run)
    # Without a key column rows are keyed by position (0-based); this is the row number a person sees for
    # position 0 (a CSV's header is row 1, so its first row is 2). None: rows are keyed by a key column.
    first_row: int | None

    async def count(self) -> int | None:
        """How many rows there are, if cheap to know."""
        ...

    def batches(self) -> AsyncIterator[Batch]:
        """The rows, batch by batch, in a stable order."""
        ...

    async def close(self) -> None:
        """Release connections."""
        ...


def check_distinct_columns(source: Source) -> None:
    """InputError naming every column name that appears more than once (no cell could be told apart)."""
    repeated = [name for name, count in Counter(source.columns).items() if count > 1]
    if repeated:
        names = " and ".join([", ".join(repeated[:-1]), repeated[-1]] if len(repeated) > 1 else repeated)
        raise InputError(f"{source.description}: the column name{'s' if len(repeated) > 1 else ''} {names} "
                         f"{'each ' if len(repeated) > 1 else ''}appear{'' if len(repeated) > 1 else 's'} more than "
                         "once in the header; give every column its own name")


def check_columns(source: Source, needed: Iterable[str], *, what: str) -> None:
    """InputError naming every needed column the source lacks."""
    missing = [name for name in needed if name not in source.columns]
    if missing:
        raise InputError(f"{source.description}: {what} column(s) not found: {', '.join(missing)} "
                         f"(columns: {', '.join(source.columns[:30])}{'...' if len(source.columns) > 30 else ''})")


def canonical_key(value: Any) -> Key:
    """A key as results are stored under: an int or a string."""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value)


def keyed(frames: Iterator[pl.DataFrame], key: str | None) -> Iterator[Batch]:
    """Attach keys to frames: the key column's values, or the 0-based row position."""
    position = 0
    for frame in frames:
        if key is None:
            keys: list[Key] = list(range(position, position + frame.height))
        else:
            keys = [canonical_key(v) for v in frame.get_column(key).to_list()]
        position += frame.height
        yield Batch(frame, keys)


def check_key_streaming(key_batches: Callable[[], Iterator[pl.Series]], key: str, description: str) -> None:
    """InputError if the key has empty or repeated values, in ~4 bytes a row (5M rows: 20 MB, not 600).

    Keeps a 32-bit hash per row, sorts them, and compares neighbours; rows whose hashes match (repeats, and
    a few thousand chance collisions per million keys) are compared by value in a second pass, so a
    collision never reports a false repeat.
    """
    hashes: list[pl.Series] = []
    nulls = 0
    for keys in key_batches():
        nulls += keys.null_count()
        hashes.append(_hash32(keys))
    if nulls:
        raise InputError(f"{description}: key column {key!r} has {nulls} empty value(s)")
    if not hashes:
        return
    ordered = pl.concat(hashes).sort()
    del hashes
    suspects = set(ordered.filter(ordered == ordered.shift(1)).to_list())
    del ordered
    if not suspects:
        return
    seen: set[Any] = set()
    for keys in key_batches():
        for value in keys.filter(_hash32(keys).is_in(list(suspects))).to_list():
            if value in seen:
                raise InputError(f"{description}: key column {key!r} has repeated values (e.g. {value!r})")
            seen.add(value)


def _hash32(values: pl.Series) -> pl.Series:
    return (values.hash() & 0xFFFFFFFF).cast(pl.UInt32)


def check_key(frame: pl.LazyFrame | pl.DataFrame, key: str, description: str) -> None:
    """InputError if the key column has empty or repeated values."""
    stats = frame.lazy().select(
        pl.col(key).is_null().sum().alias("nulls"),
        pl.col(key).is_duplicated().any().alias("dupes"),
    ).collect()
    if stats["nulls"][0]:
        raise InputError(f"{description}: key column {key!r} has {stats['nulls'][0]} empty value(s)")
    if stats["dupes"][0]:
        example = frame.lazy().filter(pl.col(key).is_duplicated()).select(key).head(1).collect().item()
        raise InputError(f"{description}: key column {key!r} has repeated values (e.g. {example!r})")
