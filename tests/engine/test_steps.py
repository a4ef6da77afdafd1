"""Multi-step workflows in the engine: embed → retrieve → prompt, fan-out with agreement, over real files and the
fake upstream on 127.0.0.1 through the gateway router."""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path
from typing import Any

import polars as pl

from engine.gateway.config import load_gateway
from engine.gateway.mock import MockClient
from engine.gateway.router import Router
from engine.results.answer_cache import SqliteAnswerCache
from engine.results.sqlite_store import SqliteResultStore
from engine.run import run_spec
from engine.run.runner import RunOutcome
from engine.spec import load_spec
from tests.support.engine_helpers import cosine
from tests.support.fake_upstream import FakeUpstream, fake_vector, marker

CHAT_MODELS = 3
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def gateway_yaml(up: FakeUpstream) -> str:
    """Chat models m0..m2 (upstream names fake-0..fake-2) and an embedding model `emb`, all on one upstream."""
    models = [f"  - {{name: m{i}, model: fake-{i}, channel: c, timeout: 5}}" for i in range(CHAT_MODELS)]
    models.append("  - {name: emb, model: fake-emb, channel: c, timeout: 5}")
    return (f"channels:\n  c: {{base_url: '{up.base_url.removesuffix('/v1')}'}}\nmodels:\n" + "\n".join(models)
            + "\n")


async def run(text: str, up: FakeUpstream, tmp_path: Path, *, work: str = "work",
              cache: SqliteAnswerCache | None = None) -> RunOutcome:
    router = Router(load_gateway(gateway_yaml(up)))
    try:
        return await run_spec(load_spec(text).spec, client=router, base_dir=tmp_path, work_dir=tmp_path / work,
                              cache=cache)
    finally:
        await router.aclose()


def knowledge(count: int) -> pl.DataFrame:
    return pl.DataFrame({"doc": [f"kb-{i:03d}" for i in range(count)],
                         "text": [f"Article {i}: how to fix problem {i * 13 % 97}" for i in range(count)]})


def questions(count: int) -> pl.DataFrame:
    return pl.DataFrame({"id": list(range(count)), "subject": [f"Help {i}" for i in range(count)],
                         "body": [f"My device {i} shows error {i * 7}" for i in range(count)]})


RAG = """name: rag
source: {kind: csv, path: questions.csv, key: id}
steps:
  - {id: embed, kind: embed, template: "{subject}: {body}", output: vector, model: emb, batch_size: 8}
  - id: find
    kind: retrieve
    query: vector
    knowledge: {source: {kind: csv, path: kb.csv}, text: text, id: doc}
    top_k: 3
    output: context
    ids_output: ids
    scores_output: scores
  - id: answer
    kind: prompt
    input: [subject, context]
    output: {reply: reply}
    prompt: {template: "Question: {subject}\\nUse these articles:\\n{context}"}
    model: {name: m0}
concurrency: {in_flight: 8}
sink: {kind: jsonl, path: out.jsonl}
"""


def nearest(query: list[float], table: pl.DataFrame, k: int) -> list[tuple[str, str]]:
    """Brute force: every row scored, sorted by score, then position."""
    scored = sorted(((-cosine(query, fake_vector(text)), i) for i, text in enumerate(table["text"])))
    return [(table["doc"][i], table["text"][i]) for _, i in scored[:k]]


async def test_embed_retrieve_prompt_answers_each_row_from_the_context_it_should_retrieve(tmp_path: Path) -> None:
    kb, rows = knowledge(40), questions(30)
    kb.write_csv(tmp_path / "kb.csv")
    rows.write_csv(tmp_path / "questions.csv")
    cache = SqliteAnswerCache(tmp_path / "answers.sqlite")
    async with FakeUpstream() as up:
        outcome = await run(RAG, up, tmp_path, cache=cache)
        first_embeds = sum(up.stats.embedded.values())
        again = await run(RAG, up, tmp_path, work="work-2", cache=cache)  # a new run: vectors from the cache
        await cache.close()
        stats = up.stats
    assert (outcome.progress.done, outcome.progress.failed) == (30, 0)
    out = pl.read_ndjson(tmp_path / "out.jsonl")
    assert out.columns == ["id", "subject", "body", "vector", "context", "ids", "scores", "reply"]
    for row in out.iter_rows(named=True):
        query = f"{row['subject']}: {row['body']}"
        assert row["vector"] == fake_vector(query)  # a list column, the upstream's numbers exactly
        hits = nearest(fake_vector(query), kb, 3)
        assert row["ids"] == [doc for doc, _ in hits]
        context = "\n\n".join(f"[{doc}] {text}" for doc, text in hits)
        assert row["context"] == context
        prompt = f"Question: {row['subject']}\nUse these articles:\n{context}"
        assert row["reply"] == f"reply:{marker(prompt)}"  # answered from that context
        assert row["scores"] == sorted(row["scores"], reverse=True)
    assert first_embeds == 70 and set(stats.embedded.values()) == {1}  # each text embedded once, ever
    assert stats.embed_requests <= 70 // 2  # several texts a request
    assert (again.progress.done, again.progress.cached) == (30, 30 + 30)  # vectors and answers from the cache
    assert stats.asked[(prompt, "fake-0")] == 1


FAN_OUT = """name: compare
source: {kind: csv, path: questions.csv, key: id}
steps:
  - id: triage
    kind: prompt
    input: [subject, body]
    output: {category: category}
    prompt: {template: "Triage: {subject} / {body}"}
    validation: {category: [technical, billing, other]}
    models: [m0, m1, m2]
    compare: {fields: [category]}
concurrency: {in_flight: 6}
sink: {kind: csv, path: out.csv}
"""


async def test_a_fan_out_writes_each_models_answer_in_its_columns_and_whether_they_agree(tmp_path: Path) -> None:
    rows = questions(60)
    rows.write_csv(tmp_path / "questions.csv")
    async with FakeUpstream(model_answers=True) as up:
        outcome = await run(FAN_OUT, up, tmp_path)
    assert (outcome.progress.done, outcome.progress.failed) == (60, 0)
    assert {target: counts["done"] for target, counts in outcome.progress.steps["triage"].items()} == \
        {"m0": 60, "m1": 60, "m2": 60}
    out = pl.read_csv(tmp_path / "out.csv", infer_schema=False)
    assert out.columns == ["id", "subject", "body", "category_m0", "category_m1", "category_m2",
                           "category_agreement", "category_consensus"]
    levels: Counter[str] = Counter()
    for row in out.iter_rows(named=True):
        prompt = f"Triage: {row['subject']} / {row['body']}"
        body = {"response_format": {"json_schema": {"schema": {"properties": {
            "category": {"enum": ["technical", "billing", "other"]}}}}}}
        answers = [FakeUpstream.answer(body, f"fake-{i}|{prompt}")["category"] for i in range(CHAT_MODELS)]
        assert [row[f"category_m{i}"] for i in range(CHAT_MODELS)] == answers
        top, count = Counter(answers).most_common(1)[0]
        level = {3: "all", 2: "majority", 1: "none"}[count]
        assert row["category_agreement"] == level
        assert row["category_consensus"] == (top if count > 1 else None)
        levels[level] += 1
        assert all(up.stats.asked[(prompt, f"fake-{i}")] == 1 for i in range(CHAT_MODELS))
    assert levels["all"] and levels["majority"]  # the data has rows of each kind
    store = SqliteResultStore(tmp_path / "work" / "results.sqlite")
    try:
        units = await store.done_units(["0", "1"], [("triage", f"m{i}") for i in range(CHAT_MODELS)])
    finally:
        await store.close()
    assert sorted(units["0"]) == [("triage", "m0"), ("triage", "m1"), ("triage", "m2")]
    assert units["1"][("triage", "m2")].outputs == {"category": out["category_m2"][1]}


FILTERED = """name: filtered
source: {kind: csv, path: questions.csv, key: id}
steps:
  - id: triage
    kind: prompt
    input: [body]
    output: {category: category}
    prompt: {template: "Kind of: {body}"}
    validation: {category: [technical, billing, other]}
    model: {name: m0}
  - {id: only_technical, kind: filter, column: category, equals: technical}
  - id: fix
    kind: prompt
    input: [body, category]
    output: {steps: fix}
    prompt: {template: "Fix ({category}): {body}"}
    model: {name: m1}
sink: {kind: csv, path: out.csv}
"""


async def test_a_filter_sends_only_the_rows_it_lets_through_to_the_next_step(tmp_path: Path) -> None:
    questions(40).write_csv(tmp_path / "questions.csv")
    async with FakeUpstream() as up:
        outcome = await run(FILTERED, up, tmp_path)
        asked: dict[str, Any] = dict(up.stats.models)
    out = pl.read_csv(tmp_path / "out.csv", infer_schema=False)
    technical = out.filter(pl.col("category") == "technical")
    assert 0 < technical.height < 40 and outcome.progress.done == 40
    assert asked == {"fake-0": 40, "fake-1": technical.height}
    assert technical["fix"].null_count() == 0 and out.filter(pl.col("category") != "technical")["fix"].null_count() \
        == 40 - technical.height
    filtered = outcome.progress.steps["only_technical"][""]
    assert filtered["done"] == 40
    row = technical.row(0, named=True)
    assert row["fix"] == f"steps:{marker('Fix (technical): ' + row['body'])}"



async def test_the_examples_run_as_their_comments_say(tmp_path: Path) -> None:
    shutil.copytree(EXAMPLES, tmp_path / "examples")
    rag = load_spec((tmp_path / "examples" / "rag" / "rag.yaml").read_text(encoding="utf-8")).spec
    done = await run_spec(rag, client=MockClient(), base_dir=tmp_path / "examples" / "rag", work_dir=tmp_path / "w1")
    folder = tmp_path / "examples" / "fan-out"
    router = Router(load_gateway((folder / "gateway.yaml").read_text(encoding="utf-8")))
    try:
        compared = await run_spec(load_spec((folder / "compare.yaml").read_text(encoding="utf-8")).spec,
                                  client=router, base_dir=folder, work_dir=tmp_path / "w2")
    finally:
        await router.aclose()
    assert (done.progress.done, compared.progress.done) == (6, 8)
    answers = pl.read_csv(tmp_path / "examples" / "rag" / "answers.csv")
    assert "question_vector" not in answers.columns  # text_files: omit
    assert answers.filter(pl.col("subject") == "VPN keeps dropping")["article_ids"][0].startswith('["vpn-drops"')
    out = pl.read_csv(folder / "compared.csv")
    assert set(out["category_agreement"]) <= {"all", "majority", "none"} and out["category_model-c"].null_count() == 0
