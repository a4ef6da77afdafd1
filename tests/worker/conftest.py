"""Fixtures of the worker tests."""

from tests.support.arq_helpers import queue_name

__all__ = ["queue_name"]
