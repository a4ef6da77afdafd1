"""The run: rows from the source through attempts at the model into the results store and the sink.

`run_spec` is the entry point; the modules beside it are its parts (attempts, answers, prompts, row
selection, progress, the pause on API errors, the outage stop).
"""

from engine.run.progress import Progress, ProgressCallback
from engine.run.runner import EventCallback, Runner, RunOutcome, run_spec

__all__ = ["EventCallback", "Progress", "ProgressCallback", "RunOutcome", "Runner", "run_spec"]
