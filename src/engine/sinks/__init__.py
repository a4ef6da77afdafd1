"""Sinks: write results into the output columns (files atomically, MySQL by key), and the errors file."""

from engine.sinks.base import Sink, merged_frames
from engine.sinks.open import open_sink

__all__ = ["Sink", "merged_frames", "open_sink"]
