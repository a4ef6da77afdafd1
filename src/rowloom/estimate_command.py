"""`rowloom run --estimate`: what a run would send and cost, printed, with no request made."""

from __future__ import annotations

from pathlib import Path

from engine import (
    AnswerCache,
    Connections,
    Estimate,
    PathPolicy,
    SqliteResultStore,
    WorkflowSpec,
    estimate_run,
    open_source,
)
from engine.gateway import Deployment, GatewayConfig


def candidates(spec: WorkflowSpec, gateway: GatewayConfig | None, model: str | None) -> list[Deployment]:
    """The deployments the run's requests would go to: the gateway's for the spec's model, else one model with
    no price (an upstream given by URL, or the mock)."""
    if gateway is not None:
        return gateway.members(spec.model.name)
    return [Deployment(name=model or spec.model.name, model=model or spec.model.name, provider="mock")]


async def estimate_spec(spec: WorkflowSpec, *, base_dir: Path, work_dir: Path, deployments: list[Deployment],
                        connections: Connections, cache: AnswerCache | None = None) -> Estimate:
    """The estimate over the spec's source; rows already done in `work_dir` (a resume) and rows the answer
    cache would answer are not counted."""
    source = await open_source(spec, paths=PathPolicy(base_dir), connections=connections)
    store = SqliteResultStore(work_dir / "results.sqlite") if (work_dir / "results.sqlite").exists() else None
    try:
        earlier = await store.mean_tokens_out() if store is not None else None
        return await estimate_run(spec, source=source, deployments=deployments, store=store,
                                  earlier_output_tokens=earlier, cache=cache)
    finally:
        await source.close()
        if cache is not None:
            await cache.close()
        if store is not None:
            await store.close()


def print_estimate(estimate: Estimate) -> None:
    """The estimate as a few lines and a table of models."""
    e = estimate
    print(f"rows: {e.rows_to_send:,} to send of {e.rows_total:,} ({e.rows_skipped:,} skipped by select, "
          f"{e.rows_done:,} already done, {e.rows_cached:,} answered by the cache)")
    print(f"tokens: {e.input_tokens:,} in; out {e.output_tokens_low:,} / {e.output_tokens_expected:,} / "
          f"{e.output_tokens_high:,} (low / expected / high: {e.output_basis})")
    print(f"cost: {e.cost_low:.4f} / {e.cost_expected:.4f} / {e.cost_high:.4f} (low / expected / high)")
    if e.batch_cost is not None:
        print("in provider batches: {:.4f} / {:.4f} / {:.4f}".format(*e.batch_cost))
    time = f"{e.seconds:,.0f} s" if e.seconds is not None else "not bounded"
    print(f"time the limits imply: {time} ({e.seconds_basis})")
    for m in e.models:
        print(f"  {m.name} ({m.model}, {m.tokenizer}): {m.share:.0%} of rows, {m.input_tokens:,} tokens in, "
              f"~{m.output_tokens:,} out, cost {m.cost_low:.4f} / {m.cost_expected:.4f} / {m.cost_high:.4f}")

