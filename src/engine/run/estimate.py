"""What a run would send and cost, worked out before it runs: no model is called.

Rows: the source's rows after selection (`select`), less those already done (a resume) and those the answer
cache would answer (a stored answer the workflow's `cache` setting accepts, or a prompt met earlier in the
run). Input tokens: every row's prompt rendered and counted by each candidate model's tokenizer
(`engine.run.tokens`). Output tokens: the average of earlier runs' answers when there are some, else a guess
from the answer's fields; `max_tokens` is the high end when set. Cost: each candidate model's share of the
rows by its routing weight, at its price. Time: what `safe_rps` and `tpm` allow, when every candidate has
them. Re-asked answers (content errors) and retries are not in it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from engine.errors import InputError
from engine.gateway.config import Deployment, Price
from engine.results.answer_cache import AnswerCache
from engine.results.store import ResultStore
from engine.run.estimate_rows import CachedRows, CountedBatch, EstimateMemo, counted_batches
from engine.run.prompts import PromptRenderer
from engine.run.tokens import count_text, tokenizer_name
from engine.sources import Source
from engine.spec.flow import RunStep, first_prompt
from engine.spec.models import WorkflowSpec

TOKENS_PER_FIELD_GUESS = 24  # an answer field's value, when no earlier answers tell
LOW_SHARE = 0.5  # the low end of output tokens, as a share of the expected
HIGH_SHARE = 2.0  # the high end without max_tokens


@dataclass(frozen=True)
class ModelEstimate:
    """One candidate model's part of a run."""

    name: str
    model: str
    tokenizer: str
    share: float
    rows: float
    input_tokens: int
    output_tokens: int
    cost_low: float
    cost_expected: float
    cost_high: float
    batch_cost: tuple[float, float, float] | None = None  # (low, expected, high) in provider batches, if it takes any


@dataclass(frozen=True)
class Estimate:
    """Rows, tokens, cost and time of a run, before it runs."""

    rows_total: int
    rows_skipped: int
    rows_done: int
    rows_to_send: int
    rows_cached: int
    input_tokens: int
    output_tokens_low: int
    output_tokens_expected: int
    output_tokens_high: int
    output_basis: str
    cost_low: float
    cost_expected: float
    cost_high: float
    seconds: float | None
    seconds_basis: str
    models: list[ModelEstimate] = field(default_factory=list)
    batch_cost: tuple[float, float, float] | None = None  # (low, expected, high) with the batched models' share
    # in provider batches (the others live); None when no candidate takes batches


def output_per_row(step: RunStep, earlier: float | None) -> tuple[float, float, float, str]:
    """(low, expected, high) output tokens of one answer, and what they rest on."""
    fields = list(step.step.output)
    skeleton = count_text('{"' + '": "", "'.join(fields) + '": ""}', "")
    if earlier is not None and earlier > 0:
        expected, basis = earlier, "the average answer of earlier runs"
    else:
        expected, basis = skeleton + TOKENS_PER_FIELD_GUESS * len(fields), "a guess from the answer's fields"
    cap = step.model.max_tokens
    if cap is not None:
        expected = min(expected, cap)
    high = float(cap) if cap is not None else expected * HIGH_SHARE
    low = max(float(skeleton), expected * LOW_SHARE) if expected > skeleton else expected
    return low, expected, high, basis + (f"; at most max_tokens {cap}" if cap is not None else "")


def cost_of(price: Price, input_tokens: float, output_tokens: float) -> float:
    """What these tokens cost at this price (no prompt cache counted on: the high side)."""
    return price.cost(input_tokens, output_tokens)


async def estimate_run(spec: WorkflowSpec, *, source: Source, deployments: list[Deployment],
                       store: ResultStore | None = None, earlier_output_tokens: float | None = None,
                       cache: AnswerCache | None = None, stored_before: float | None = None,
                       memo: EstimateMemo | None = None) -> Estimate:
    """The estimate for `spec` over `source`, sent to `deployments` (the candidates of its model) by weight;
    rows `cache` would answer (with an answer stored before `stored_before`, if given) are not sent. With
    `memo`, the rows' counts are kept, and taken from it when the source file and spec are unchanged."""
    step = estimated_step(spec)
    weights = [max(0.0, d.weight) for d in deployments]
    shares = [w / sum(weights) if sum(weights) else 1 / len(deployments) for w in weights]
    tokenizers = {d.model: tokenizer_name(d.model) for d in deployments}
    counted_by: dict[str, str] = {}  # each tokenizer once a row, through one of its models
    for model, tokenizer in tokenizers.items():
        counted_by.setdefault(tokenizer, model)
    cached = CachedRows(step, spec, cache, stored_before)
    key = memo.key(source, spec, counted_by, cached.scope) if memo is not None and store is None else None
    kept = memo.get(key) if memo is not None and key is not None else None
    batches = _replayed(kept) if kept is not None else counted_batches(
        source, spec, store, PromptRenderer(step.step.prompt), cached, counted_by)
    tally = await _tally(batches, cached, len(counted_by), keep=key is not None and kept is None)
    if memo is not None and key is not None and kept is None:
        memo.put(key, tally.counted)
    total, skipped, done, to_send, from_cache = tally.total, tally.skipped, tally.done, tally.to_send, tally.cached
    input_by_tokenizer = dict(zip(counted_by, tally.tokens, strict=True))
    low, expected, high, basis = output_per_row(step, earlier_output_tokens)
    models = []
    for deployment, share in zip(deployments, shares, strict=True):
        tokens_in = round(input_by_tokenizer[tokenizers[deployment.model]] * share)
        rows = to_send * share
        models.append(ModelEstimate(
            name=deployment.name, model=deployment.model, tokenizer=tokenizers[deployment.model], share=share,
            rows=rows, input_tokens=tokens_in, output_tokens=round(rows * expected),
            cost_low=cost_of(deployment.price, tokens_in, rows * low),
            cost_expected=cost_of(deployment.price, tokens_in, rows * expected),
            cost_high=cost_of(deployment.price, tokens_in, rows * high),
            batch_cost=None if deployment.batch is None else (
                deployment.price.batch_cost(tokens_in, rows * low),
                deployment.price.batch_cost(tokens_in, rows * expected),
                deployment.price.batch_cost(tokens_in, rows * high))))
    input_tokens = sum(m.input_tokens for m in models)  # (by share: each model's tokenizer counts its rows)
    seconds, seconds_basis = limits_time(deployments, to_send, (input_tokens + to_send * expected) / max(1, to_send))
    return Estimate(
        rows_total=total, rows_skipped=skipped, rows_done=done, rows_to_send=to_send, rows_cached=from_cache,
        input_tokens=input_tokens,
        output_tokens_low=round(to_send * low), output_tokens_expected=round(to_send * expected),
        output_tokens_high=round(to_send * high), output_basis=basis,
        cost_low=sum(m.cost_low for m in models), cost_expected=sum(m.cost_expected for m in models),
        cost_high=sum(m.cost_high for m in models), seconds=seconds, seconds_basis=seconds_basis, models=models,
        batch_cost=_batch_total(models))


def _batch_total(models: list[ModelEstimate]) -> tuple[float, float, float] | None:
    """The run's cost with the models that take batches sending them (None when none does)."""
    if all(m.batch_cost is None for m in models):
        return None
    costs = [m.batch_cost or (m.cost_low, m.cost_expected, m.cost_high) for m in models]
    low, expected, high = (sum(c[i] for c in costs) for i in range(3))
    return low, expected, high


def estimated_step(spec: WorkflowSpec) -> RunStep:
    """The prompt step an estimate is made for: a one-step workflow's (InputError for a multi-step one)."""
    step = first_prompt(spec)
    if spec.steps is not None or step is None:
        raise InputError("an estimate covers one-step workflows (columns and prompt); this workflow has steps, "
                         "whose later inputs are known only as it runs: its budgets still hold every request")
    return step


def limits_time(deployments: list[Deployment], rows: int, tokens_per_row: float) -> tuple[float | None, str]:
    """Seconds the candidates' limits need for `rows` (None when some candidate has no limit)."""
    if not rows:
        return 0.0, "nothing to send"
    if all(d.safe_rps for d in deployments) or all(d.tpm for d in deployments):
        waits = []
        if all(d.safe_rps for d in deployments):
            waits.append(rows / sum(d.safe_rps or 0 for d in deployments))
        if all(d.tpm for d in deployments):
            waits.append(rows * tokens_per_row / (sum(d.tpm or 0 for d in deployments) / 60))
        return max(waits), "the models' safe_rps and tpm"
    return None, "no limit on some model: as fast as the models answer"


@dataclass
class _Tally:
    """What the batches add up to."""

    total: int = 0
    skipped: int = 0
    done: int = 0
    to_send: int = 0
    cached: int = 0
    tokens: list[int] = field(default_factory=list)  # input tokens of the rows to send, by tokenizer
    counted: list[CountedBatch] = field(default_factory=list)  # the batches, when kept for a memo


async def _tally(batches: AsyncIterator[CountedBatch], cached: CachedRows, tokenizers: int, *, keep: bool) -> _Tally:
    tally = _Tally(tokens=[0] * tokenizers)
    sums = tally.tokens
    async for batch in batches:
        if keep:
            tally.counted.append(batch)
        tally.total += batch.height
        tally.skipped += batch.skipped
        tally.done += batch.done
        sent = await cached.sent(batch.keys) if batch.keys is not None else [True] * len(batch.tokens)
        for row, send in zip(batch.tokens, sent, strict=True):
            if send:
                for i, count in enumerate(row):
                    sums[i] += count
        sending = sum(sent)
        tally.to_send += sending
        tally.cached += len(sent) - sending
    return tally


async def _replayed(batches: list[CountedBatch]) -> AsyncIterator[CountedBatch]:
    for batch in batches:
        yield batch
