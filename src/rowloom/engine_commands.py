"""`rowloom run`, `rowloom validate` and `rowloom import-dataflux`: the engine on its own, with a live progress
line. These commands run on the user's own machine and need no database, queue or server."""

from __future__ import annotations

import argparse
import asyncio
import re
import shutil
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from engine import (
    BatchRun,
    ConfigImportError,
    Connections,
    InputError,
    LoadedSpec,
    Progress,
    RunEvent,
    RunOutcome,
    SpecError,
    SqliteAnswerCache,
    UpstreamDown,
    WorkflowSpec,
    answer_fingerprint,
    event_loop,
    load_spec,
)
from engine.gateway import ChatClient, GatewayConfig, MockClient, OpenAIClient

T = TypeVar("T")


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `run` and `validate` on the `rowloom` parser."""
    run = commands.add_parser("run", help="run a workflow YAML over its rows, without the platform")
    run.add_argument("spec", type=Path)
    run.add_argument("--gateway", type=Path, metavar="YAML", help="route through the models of a gateway config")
    run.add_argument("--upstream", metavar="URL",
                     help="an OpenAI-compatible base URL (e.g. http://127.0.0.1:9100/v1); default: the mock model")
    run.add_argument("--api-key-env", metavar="NAME", help="environment variable holding the upstream's API key")
    run.add_argument("--model", help="model name sent upstream (default: the spec's model.name)")
    run.add_argument("--output", type=Path, help="write the output here instead of the spec's sink path")
    run.add_argument("--connections", type=Path, metavar="YAML",
                     help="a connections file, for specs that name a database connection (default: CONNECTIONS_FILE)")
    run.add_argument("--work-dir", type=Path, help="results store folder (default: .rowloom/<name> beside the spec)")
    run.add_argument("--fresh", action="store_true", help="forget earlier results and start over")
    run.add_argument("--quiet", action="store_true", help="no progress line")
    run.add_argument("--estimate", action="store_true",
                     help="print the rows, tokens, cost and time the run would take, and send nothing")
    validate = commands.add_parser("validate", help="check a workflow YAML file without running it")
    validate.add_argument("spec", type=Path)
    dataflux = commands.add_parser("import-dataflux", help="turn an AI-DataFlux config.yaml into a workflow "
                                   "spec and a gateway config")
    dataflux.add_argument("config", type=Path)
    dataflux.add_argument("--out-dir", type=Path, help="where to write them (default: beside the config)")
    dataflux.add_argument("--name", help="workflow name (default: the config file's name)")


def print_issues(path: Path, error: SpecError) -> None:
    """Each problem as `file:line:column: field: message` on stderr."""
    for issue in error.issues:
        where = f"{issue.line}:{issue.column}:" if issue.line is not None else ""
        print(f"{path}:{where} {issue.field + ': ' if issue.field else ''}{issue.message}", file=sys.stderr)


def parse_file(path: Path, parse: Callable[[str], T]) -> T:
    """Parse a YAML file; problems are printed as `file:line:column: message` and exit 1 (2: unreadable)."""
    try:
        return parse(path.read_text(encoding="utf-8"))
    except OSError as exc:
        print(f"{path}: cannot read: {exc.strerror}", file=sys.stderr)
        sys.exit(2)
    except SpecError as exc:
        print_issues(path, exc)
        sys.exit(1)


def read_spec(path: Path) -> LoadedSpec:
    """A workflow spec file, or exit with its problems (a step reading a column the source lacks among them, where
    the source's columns can be read now)."""
    from functools import partial

    from engine import PathPolicy, source_column_errors

    check = partial(source_column_errors, policy=PathPolicy(path.resolve().parent))
    return parse_file(path, partial(load_spec, checks=(check,)))


def import_dataflux_command(args: argparse.Namespace) -> int:
    """`rowloom import-dataflux`: writes <name>.workflow.yaml and <name>.gateway.yaml."""
    from rowloom.dataflux import convert

    name = args.name or re.sub(r"[^A-Za-z0-9._-]+", "-", args.config.stem).strip("-") or "imported"
    try:
        imported = convert(args.config.read_text(encoding="utf-8"), name=name)
    except OSError as exc:
        print(f"{args.config}: cannot read: {exc.strerror}", file=sys.stderr)
        return 2
    except (SpecError, ConfigImportError) as exc:
        print(f"{args.config}: cannot import: {exc}", file=sys.stderr)
        return 1
    folder = args.out_dir or args.config.resolve().parent
    folder.mkdir(parents=True, exist_ok=True)
    workflow, gateway = folder / f"{name}.workflow.yaml", folder / f"{name}.gateway.yaml"
    workflow.write_text(imported.workflow_yaml, encoding="utf-8")
    gateway.write_text(imported.gateway_yaml, encoding="utf-8")
    for warning in imported.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    print(f"wrote {workflow}\nwrote {gateway}")
    if imported.key_variables:
        print("set the API keys in these environment variables: " + ", ".join(imported.key_variables))
    return 0


def validate_command(args: argparse.Namespace) -> int:
    """`rowloom validate`: a workflow spec, or a gateway config (a mapping with `models` and no `source`)."""
    from engine import parse_yaml
    from engine.gateway import load_gateway

    tree = parse_file(args.spec, parse_yaml)
    if isinstance(tree, dict) and "models" in tree and "source" not in tree:
        config = parse_file(args.spec, load_gateway)
        print(f"{args.spec}: valid gateway config ({len(config.models)} models, {len(config.channels)} channels, "
              f"{len(config.groups)} groups; the ${{VARIABLES}} of API keys are read when it is used)")
        return 0
    loaded = read_spec(args.spec)
    print(f"{args.spec}: valid workflow spec (sha256 {loaded.sha256[:12]})")
    return 0


@dataclass(frozen=True)
class Answerer:
    """Who answers a local run's requests: a gateway config's models, an upstream by URL, or the mock model."""

    scope: str  # the answer cache's scope, and part of the results' fingerprint
    gateway: GatewayConfig | None
    client: Callable[[], ChatClient]

    def batches(self, spec: WorkflowSpec) -> GatewayConfig | None:
        """The deployments that take the spec's batches: the gateway's, or the mock model's own (under every
        model name the spec uses); None for an upstream given by URL."""
        if self.gateway is not None or self.scope != "mock":
            return self.gateway
        from engine import model_names
        from engine.gateway import BatchSupport, Deployment

        names = sorted({name for _, name in model_names(spec)} - {"mock", "auto"})
        return GatewayConfig(models=[Deployment(name="mock", model="mock", provider="mock",
                                                batch=BatchSupport(poll_s=0.5, mock_delay_s=1.0))],
                             groups={name: ["mock"] for name in names})


def answerer(args: argparse.Namespace) -> Answerer:
    """From `--gateway` or `--upstream` (with `--model` and `--api-key-env`), else the mock; exits on a bad gateway
    file."""
    import os

    if args.gateway:
        from engine.gateway import load_gateway

        config = parse_file(args.gateway, load_gateway)
        return Answerer(config.identity(), config, lambda: router_of(args.gateway, config))
    if args.upstream:
        key = os.environ.get(args.api_key_env) if args.api_key_env else None
        return Answerer(f"{args.upstream} {args.model or ''}", None,
                        lambda: OpenAIClient(args.upstream, api_key=key, model=args.model))
    return Answerer("mock", None, MockClient)


def router_of(path: Path, config: GatewayConfig) -> ChatClient:
    """A Router of a gateway config, or exit with its problems (a missing ${VAR} among them)."""
    from engine.gateway import Router

    try:
        return Router(config)
    except SpecError as exc:
        print_issues(path, exc)
        sys.exit(1)


def run_command(args: argparse.Namespace) -> int:
    """`rowloom run`: 0 when every row ended done or skipped, 1 if some failed, 2 for bad input."""
    if args.gateway and args.upstream:
        print("error: give --gateway or --upstream, not both", file=sys.stderr)
        return 2
    spec = read_spec(args.spec).spec
    base_dir = args.spec.resolve().parent
    spec_dir = args.work_dir or base_dir / ".rowloom" / (spec.name or args.spec.stem)
    if args.fresh:
        shutil.rmtree(spec_dir, ignore_errors=True)
    who = answerer(args)
    # Results are kept per fingerprint: a changed prompt, model or upstream answers every row anew.
    work_dir = spec_dir / answer_fingerprint(spec, who.scope)[:16]
    connections = local_connections(args.connections)
    # Answers by request, shared by every spec run from this folder (a changed prompt is another request).
    cache = SqliteAnswerCache(base_dir / ".rowloom" / "answers.sqlite", scope=who.scope)
    if args.estimate:
        return estimate_command(args, spec, base_dir=base_dir, work_dir=work_dir, gateway=who.gateway,
                                connections=connections, cache=cache)
    return event_loop.run(run_locally(args, spec, client=who.client(), base_dir=base_dir, work_dir=work_dir,
                                      connections=connections, cache=cache, batch_config=who.batches(spec)))


def batch_run(spec: WorkflowSpec, config: GatewayConfig | None, work_dir: Path) -> BatchRun | None:
    """The run's provider batches (their ledger in the work folder), when its steps may send any; exits naming
    a step in batch mode whose model takes none."""
    from engine import SqliteBatchLedger, requires_batches

    if config is None:
        if requires_batches(spec):
            print("error: mode batch needs --gateway with a deployment that takes batches (or the mock model)",
                  file=sys.stderr)
            sys.exit(2)
        return None
    from engine.gateway import BatchDeployments

    try:
        batches = BatchRun(spec, deployments=BatchDeployments(config),
                           ledger=SqliteBatchLedger(work_dir / "batches.sqlite"))
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    return batches if batches.batched else None


async def run_locally(args: argparse.Namespace, spec: WorkflowSpec, *, client: ChatClient, base_dir: Path,
                      work_dir: Path, connections: Connections, cache: SqliteAnswerCache,
                      batch_config: GatewayConfig | None = None) -> int:
    """The run, stopped (to resume later) by Ctrl-C or SIGTERM; its exit code as `run_command`'s."""
    from engine import run_spec

    line = ProgressLine(enabled=not args.quiet and sys.stderr.isatty())
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    batches = batch_run(spec, batch_config, work_dir)
    try:
        outcome = await run_spec(spec, client=client, base_dir=base_dir, work_dir=work_dir, output=args.output,
                                 on_progress=line.show, stop=stop, cache=cache, connections=connections,
                                 batches=batches, on_event=None if args.quiet else line.batch_event)
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except UpstreamDown as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 3
    finally:
        await client.aclose()
        await cache.close()
        if batches is not None:
            await batches.ledger.close()
            await batches.deployments.aclose()
    line.close()
    print_outcome(outcome)
    return 1 if outcome.progress.failed else 0


def print_outcome(outcome: RunOutcome) -> None:
    """How the run ended, its counts and tokens, and where its output (and errors file) is."""
    p = outcome.progress
    state = "stopped (run again to resume)" if outcome.stopped else "finished"
    reused = ", ".join(part for part in (f"{p.reused} reused from an earlier run" if p.reused else "",
                                          f"{p.cached} from the answer cache" if p.cached else "") if part)
    reused = f" ({reused})" if reused else ""
    print(f"{state} in {p.elapsed_s:.1f}s: {p.done} done{reused}, {p.failed} failed, {p.skipped} skipped"
          f" of {p.total if p.total is not None else '?'} rows; tokens {p.tokens_in} in / {p.tokens_out} out")
    print(f"output: {outcome.output}")
    if p.failed:
        print(f"failed rows and reasons: {Path(str(outcome.output)).with_suffix('').name}.errors.csv beside it")


def estimate_command(args: argparse.Namespace, spec: WorkflowSpec, *, base_dir: Path, work_dir: Path,
                     gateway: GatewayConfig | None, connections: Connections, cache: SqliteAnswerCache) -> int:
    """`rowloom run --estimate`: 0 with the estimate printed, 2 for bad input."""
    from rowloom.estimate_command import candidates, estimate_spec, print_estimate

    deployments = candidates(spec, gateway, args.model)
    if not deployments:
        print(f"error: model {spec.model.name!r} is no model or group of {args.gateway}", file=sys.stderr)
        return 2
    try:
        estimate = event_loop.run(estimate_spec(spec, base_dir=base_dir, work_dir=work_dir, deployments=deployments,
                                                connections=connections, cache=cache))
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print_estimate(estimate)
    return 0


def local_connections(path: Path | None) -> Connections:
    """The user's own machine: inline connections to any host, and the named ones of a connections file (the flag,
    or CONNECTIONS_FILE), their passwords from the environment."""
    import os

    from engine import Secrets, load_connections

    path = path or (Path(os.environ["CONNECTIONS_FILE"]) if os.environ.get("CONNECTIONS_FILE") else None)
    named = parse_file(path, load_connections) if path is not None else {}
    return Connections(Secrets(os.environ), named=named)


class ProgressLine:
    """A one-line progress bar on stderr, redrawn in place."""

    def __init__(self, *, enabled: bool) -> None:
        self.enabled = enabled
        self.width = 0

    def show(self, p: Progress) -> None:
        """Redraw the line."""
        if not self.enabled:
            return
        total = p.total or 0
        share = p.handled / total if total else 0.0
        bar = "#" * int(share * 24)
        eta = f"ETA {p.eta_s:.0f}s" if p.eta_s is not None else ""
        text = (f"\r[{bar:<24}] {p.handled:,}/{total:,}  done {p.done:,}  failed {p.failed:,}  "
                f"skipped {p.skipped:,}  {p.rows_per_s:,.0f} rows/s  {eta}  tokens {p.tokens_in + p.tokens_out:,}")
        self.width = max(self.width, len(text))
        sys.stderr.write(text.ljust(self.width))
        sys.stderr.flush()

    def batch_event(self, kind: RunEvent, message: str, _: dict[str, Any]) -> None:
        """A provider batch submitted or ended, on a line of its own (shown even when stderr is no terminal)."""
        if kind in (RunEvent.BATCH_SUBMITTED, RunEvent.BATCH_ENDED):
            self.close()
            self.width = 0
            print(message, file=sys.stderr, flush=True)

    def close(self) -> None:
        """End the line."""
        if self.enabled and self.width:
            sys.stderr.write("\n")
