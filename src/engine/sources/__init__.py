"""Row sources: read a table in batches, each row with a stable key.

`open_source` checks everything it can (file, sheet, columns, key) before the first request is sent.
"""

from engine.sources.base import Batch, Source, check_columns
from engine.sources.open import open_source

__all__ = ["Batch", "Source", "check_columns", "open_source"]
