"""`maestro-gate posture ...`: the Threat Mapper reports on the command line.

Each report reads the configured bundle and registry (or `--bundle`/`--registry`), evaluates
candidates on a local engine loaded with that bundle (the configured engine when it is a local
one, else the embedded one), and reads the audit log's last `--days` (default 7). It prints a
table, or the JSON report with `--json`; nothing is written to the audit log.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from maestro_gate.config import Settings
from maestro_gate.core.errors import GateError

Report = Callable[[Any, Any, Any], Awaitable[dict[str, Any]]]


def _bundle(args: argparse.Namespace, settings: Settings, compare: bool = False) -> Any:
    from maestro_gate.posture import sources

    directory = getattr(args, "compare_bundle", None) if compare else None
    registry = getattr(args, "compare_registry", None) if compare else None
    bundle_dir = Path(directory or args.bundle or settings.bundle_dir)
    registry_file = registry or args.registry or settings.registry_file
    return sources.load_bundle(bundle_dir, Path(registry_file) if registry_file else None)


def _engine_kind(settings: Settings, args: argparse.Namespace) -> str:
    """`--engine`, else the configured engine when it is a local one, else the embedded one."""
    chosen = getattr(args, "engine", None) or settings.engine
    return chosen if chosen != "opa" else "embedded"


def _window(args: argparse.Namespace, settings: Settings) -> Any:
    from maestro_gate.audit.backends import is_postgres, open_log, sqlite_file
    from maestro_gate.posture import sources
    from maestro_gate.posture.window import Window, bounds

    since, until = bounds(args.days)
    dsn = args.dsn or settings.audit_dsn
    if not is_postgres(dsn) and not sqlite_file(dsn).is_file():
        print(f"note: no audit log at {sqlite_file(dsn)}; the window is empty", file=sys.stderr)
        return Window(since, until, [])
    log = open_log(dsn)
    try:
        return sources.read_window(log, since, until, getattr(args, "max_records", None))
    finally:
        log.close()


def _prober(engine: Any, args: argparse.Namespace) -> Any:
    from maestro_gate.posture.probe import Prober

    return Prober(engine, max_evaluations=args.max_evaluations, max_seconds=args.max_seconds)


def _emit(report: dict[str, Any], args: argparse.Namespace, table: Callable[..., str]) -> int:
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(table(report))
    return 0


def _run_logged(args: argparse.Namespace, settings: Settings, name: str) -> int:
    """topology, permissions, classification: registry + window (+ the policy)."""
    from maestro_gate.posture import reports, sources, tables

    try:
        bundle = _bundle(args, settings)
        window = _window(args, settings)
        registry = sources.registry_of(bundle)
        if name == "classification":
            return _emit(
                reports.classification_report(registry, window), args, tables.classification
            )

        async def run() -> dict[str, Any]:
            with sources.local_engine(bundle, _engine_kind(settings, args)) as engine:
                prober = None if args.no_policy else _prober(engine, args)
                if name == "topology":
                    return await reports.topology_report(registry, window, prober)
                return await reports.permissions_report(registry, window, prober)

        report = asyncio.run(run())
    except GateError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 1
    if name == "topology":
        _graph(report, args)
        return _emit(report, args, tables.topology)
    return _emit(report, args, tables.permissions)


def _graph(report: dict[str, Any], args: argparse.Namespace) -> None:
    from maestro_gate.posture import sources

    if args.dot:
        Path(args.dot).write_text(report["dot"])
    if args.svg:
        svg = sources.render_svg(report["dot"])
        if svg is None:
            print("note: Graphviz `dot` is not installed; no SVG written", file=sys.stderr)
        else:
            Path(args.svg).write_bytes(svg)


def _topology(args: argparse.Namespace, settings: Settings) -> int:
    return _run_logged(args, settings, "topology")


def _permissions(args: argparse.Namespace, settings: Settings) -> int:
    return _run_logged(args, settings, "permissions")


def _classification(args: argparse.Namespace, settings: Settings) -> int:
    return _run_logged(args, settings, "classification")


def _blast_radius(args: argparse.Namespace, settings: Settings) -> int:
    from maestro_gate.posture import reports, sources, tables

    async def one(bundle: Any) -> dict[str, Any]:
        registry = sources.registry_of(bundle)
        agents = reports.compromised_agents(registry, args.agent, args.agent_class)
        with sources.local_engine(bundle, _engine_kind(settings, args)) as engine:
            return await reports.blast_report(
                registry, agents, _prober(engine, args), args.max_depth
            )

    try:
        report = asyncio.run(one(_bundle(args, settings)))
        if args.compare_bundle or args.compare_registry:
            after = asyncio.run(one(_bundle(args, settings, compare=True)))
            report = reports.compare_report(report, after)
    except GateError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 1
    return _emit(report, args, tables.blast_radius)


def _catalog_reports(args: argparse.Namespace, settings: Settings, name: str) -> int:
    """orchestrator, coverage: registry, window, and the bundle's coverage of the catalog."""
    from maestro_gate.posture import reports, sources, tables

    try:
        bundle_dir = Path(args.bundle or settings.bundle_dir)
        bundle = sources.load_bundle(bundle_dir, _registry_file(args, settings))
        registry = sources.registry_of(bundle)
        catalog_dir = Path(args.catalog) if args.catalog else settings.catalog_dir
        catalog, coverage = sources.catalog_coverage(bundle_dir, catalog_dir)
        window = _window(args, settings)
        if name == "coverage":
            report = reports.coverage_traffic_report(registry, coverage, window)
            return _emit(report, args, tables.coverage)
        report = reports.orchestrator_report(registry, catalog, coverage, window, args.agent)
    except GateError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 1
    return _emit(report, args, tables.orchestrator)


def _registry_file(args: argparse.Namespace, settings: Settings) -> Path | None:
    found = args.registry or settings.registry_file
    return Path(found) if found else None


def _orchestrator(args: argparse.Namespace, settings: Settings) -> int:
    return _catalog_reports(args, settings, "orchestrator")


def coverage_with_traffic(args: argparse.Namespace, settings: Settings) -> int:
    """`posture coverage`, and `catalog coverage --traffic`."""
    return _catalog_reports(args, settings, "coverage")


def _replay(args: argparse.Namespace, settings: Settings) -> int:
    from maestro_gate.audit.backends import is_postgres, open_log, sqlite_file
    from maestro_gate.posture import reports, sources, tables
    from maestro_gate.posture.replay import Replayer

    dsn = args.dsn or settings.audit_dsn
    if not is_postgres(dsn) and not sqlite_file(dsn).is_file():
        print(f"error: no audit log at {sqlite_file(dsn)}", file=sys.stderr)
        return 1
    try:
        bundle = sources.load_bundle(
            Path(args.bundle), Path(args.registry) if args.registry else None
        )
        log = open_log(dsn)
        try:
            records = sources.last_decisions(log, args.last)
        finally:
            log.close()

        async def run() -> dict[str, Any]:
            with sources.local_engine(bundle, _engine_kind(settings, args)) as engine:
                replayer = Replayer(engine)
                return await reports.replay_report(sources.registry_of(bundle), records, replayer)

        report = asyncio.run(run())
    except GateError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 1
    return _emit(report, args, tables.replay)


def _common(parser: argparse.ArgumentParser, logged: bool = True) -> None:
    parser.add_argument("--bundle", help="bundle directory or .tar.gz (default: bundle dir)")
    parser.add_argument("--registry", help="registry JSON file replacing the bundle's")
    parser.add_argument("--json", action="store_true", help="print the JSON report")
    parser.add_argument(
        "--max-evaluations", type=int, default=20_000, help="bound on policy evaluations"
    )
    parser.add_argument("--max-seconds", type=float, default=30.0, help="bound on time")
    _engine_option(parser)
    if logged:
        parser.add_argument("--dsn", help="audit DSN (default: MAESTRO_GATE_AUDIT_DSN)")
        parser.add_argument("--days", type=float, default=7.0, help="window, in days")
        parser.add_argument(
            "--max-records", type=int, help="read only the window's newest N records"
        )
        parser.add_argument(
            "--no-policy", action="store_true", help="only the log; do not ask the engine"
        )


def _engine_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--engine",
        choices=("embedded", "opa-inprocess"),
        help="the local engine asked (default: the configured one if local, else embedded)",
    )


def add_commands(posture: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    topology = posture.add_parser(
        "topology", help="declared agent edges against observed traffic and the policy"
    )
    _common(topology)
    topology.add_argument("--dot", help="write the Graphviz DOT graph to this file")
    topology.add_argument("--svg", help="render the graph to SVG (needs Graphviz `dot`)")
    topology.set_defaults(handler=_topology)

    permissions = posture.add_parser(
        "permissions", help="tools granted, used, denied; unused and uncovered risky grants"
    )
    _common(permissions)
    permissions.set_defaults(handler=_permissions)

    classification = posture.add_parser(
        "classification", help="observed data movements, level against level; downward moves"
    )
    _common(classification)
    classification.set_defaults(handler=_classification)

    orchestrator = posture.add_parser(
        "orchestrator", help="STRIDE table per orchestrating agent: threats, rules, tests, denials"
    )
    _common(orchestrator)
    orchestrator.add_argument(
        "--agent", action="append", default=[], help="these agents (default: orchestrators)"
    )
    orchestrator.add_argument("--catalog", help="MAESTRO catalog directory")
    orchestrator.set_defaults(handler=_orchestrator)

    coverage = posture.add_parser(
        "coverage", help="catalog coverage with the denials and escalations in the window"
    )
    _common(coverage)
    coverage.add_argument("--catalog", help="MAESTRO catalog directory")
    coverage.set_defaults(handler=coverage_with_traffic)

    replay = posture.add_parser(
        "replay", help="re-evaluate the log's last decisions on a candidate bundle; writes nothing"
    )
    replay.add_argument("--bundle", required=True, help="the candidate bundle (dir or .tar.gz)")
    replay.add_argument("--registry", help="a registry JSON file replacing the candidate's")
    replay.add_argument("--last", type=int, default=1000, help="how many decisions (default 1000)")
    replay.add_argument("--dsn", help="audit DSN (default: MAESTRO_GATE_AUDIT_DSN)")
    replay.add_argument("--json", action="store_true", help="print the JSON report")
    _engine_option(replay)
    replay.set_defaults(handler=_replay)

    blast = posture.add_parser(
        "blast-radius", help="what a compromised agent reaches, asked of the enforced policy"
    )
    _common(blast, logged=False)
    blast.add_argument(
        "--agent", action="append", default=[], help="agent id or its last segment (repeat)"
    )
    blast.add_argument("--class", dest="agent_class", help="every agent of this registry class")
    blast.add_argument("--max-depth", type=int, help="delegation hops (default: max_chain_depth)")
    blast.add_argument("--compare-bundle", help="a second bundle: what it opens and closes")
    blast.add_argument("--compare-registry", help="a second registry: what it opens and closes")
    blast.set_defaults(handler=_blast_radius)


def add_traffic_options(coverage: argparse.ArgumentParser) -> None:
    """`catalog coverage --traffic [--days N] [--dsn D]`: join the audit log's window."""
    coverage.add_argument(
        "--traffic", action="store_true", help="add the window's denials and escalations"
    )
    coverage.add_argument("--days", type=float, default=7.0, help="with --traffic: days")
    coverage.add_argument("--dsn", help="with --traffic: audit DSN")
    coverage.set_defaults(handler=catalog_coverage)


def catalog_coverage(args: argparse.Namespace, settings: Settings) -> int:
    """`catalog coverage`, joined with live traffic under `--traffic` (posture coverage)."""
    if not args.traffic:
        from maestro_gate.cli.policy import catalog_coverage as static

        return static(args, settings)
    args.bundle, args.registry = args.policies, None
    return coverage_with_traffic(args, settings)
