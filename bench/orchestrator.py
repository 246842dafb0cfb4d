"""Run every (system, workload) pair, repeatedly and interleaved; write the report.

``uv run python -m bench [--systems ...] [--workloads ...] [--repeats N]
[--quick] [--out bench/RESULTS.md]``. Each run is one subprocess with a
hard timeout; a system that fails shows as ``error: <first line>``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import import_time, report
from bench.common import RESULT_PREFIX
from bench.venvs import (
    ENVS,
    FLOORS,
    OURS,
    PEERS,
    ROOT,
    SYSTEMS,
    EnvError,
    clean_environ,
    describe,
    ensure_env,
)
from bench.workloads import WORKLOADS

ALL_WORKLOADS = (*WORKLOADS, "import")
ALIASES = {"all": tuple(SYSTEMS), "ours": OURS, "peers": PEERS, "floors": FLOORS}


@dataclass
class Prepared:
    """An env ready to run, or the reason it is not."""

    python: Path | None = None
    cwd: Path | None = None
    error: str | None = None
    versions: dict[str, Any] = field(default_factory=dict)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument(
        "--systems",
        default="all",
        help=f"comma list of {', '.join(SYSTEMS)} or ours/peers/floors/all (default all)",
    )
    parser.add_argument(
        "--workloads",
        default="all",
        help=f"comma list of {', '.join(ALL_WORKLOADS)} (default all)",
    )
    parser.add_argument("--repeats", type=int, default=3, help="runs per pair (default 3)")
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "RESULTS.md")
    parser.add_argument(
        "--ours-src",
        type=Path,
        metavar="DIR",
        help="run our quiv from DIR/quiv (e.g. a git worktree) instead of this checkout",
    )
    parser.add_argument(
        "--from-json",
        type=Path,
        metavar="RAW",
        help="only re-render --out from a raw bench/results/*.json file",
    )
    args = parser.parse_args(argv)
    args.systems = _expand(args.systems, ALIASES, SYSTEMS, parser)
    args.workloads = _expand(args.workloads, {"all": ALL_WORKLOADS}, ALL_WORKLOADS, parser)
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    return args


def _expand(
    raw: str, aliases: dict[str, tuple[str, ...]], known: Any, parser: argparse.ArgumentParser
) -> list[str]:
    names: list[str] = []
    for item in filter(None, (part.strip() for part in raw.split(","))):
        for name in aliases.get(item, (item,)):
            if name not in known:
                parser.error(f"unknown name {name!r}")
            if name not in names:
                names.append(name)
    return names


def prepare(env_names: list[str], ours_src: Path | None) -> dict[str, Prepared]:
    prepared: dict[str, Prepared] = {}
    for name in env_names:
        log(f"preparing env {name} …")
        try:
            python, cwd = ensure_env(name, ours_src)
        except EnvError as exc:
            prepared[name] = Prepared(error=str(exc))
            continue
        prepared[name] = Prepared(python, cwd, versions=describe(name, python, cwd))
    return prepared


def run_one(env: Prepared, system: str, workload: str, quick: bool) -> dict[str, Any]:
    """One runner process; returns its parsed result line (or an error)."""
    spec = WORKLOADS[workload]
    record: dict[str, Any] = {"system": system, "workload": workload}
    if env.error or env.python is None:
        return record | {"ok": False, "error": env.error or "env not ready"}
    params = spec.params(quick) | {"system": system}
    args = [str(env.python), "-m", SYSTEMS[system].runner, workload, json.dumps(params)]
    started = time.perf_counter()
    proc = subprocess.Popen(
        args,
        cwd=env.cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=clean_environ(),
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=spec.timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        return record | {
            "seconds": time.perf_counter() - started,
            "ok": False,
            "error": f"timeout: no result within {spec.timeout_s:.0f} s",
            "stderr": err[-4000:],
        }
    record["seconds"] = time.perf_counter() - started
    for line in reversed(out.splitlines()):
        if line.startswith(RESULT_PREFIX):
            return record | json.loads(line[len(RESULT_PREFIX) :])
    lines = [line for line in err.strip().splitlines() if line.strip()]
    first = lines[-1] if lines else f"exit code {proc.returncode}, no output"
    return record | {"ok": False, "error": first, "stderr": err[-4000:]}


def describe_source(ours_src: Path | None) -> str:
    """Where our quiv came from: a path and its ``git describe``, if any."""
    where = (ours_src or ROOT).resolve()
    proc = subprocess.run(
        ["git", "describe", "--always", "--dirty"],
        cwd=where,
        capture_output=True,
        text=True,
        check=False,
    )
    described = proc.stdout.strip() if proc.returncode == 0 else "not a git checkout"
    return f"{where} ({described})"


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def describe_run(result: dict[str, Any]) -> str:
    if not result.get("ok"):
        return f"error: {result.get('error')}"
    if "unsupported" in result:
        return f"n/a ({result['unsupported']})"
    shown = [f"{k}={v:.4g}" for k, v in result["metrics"].items() if isinstance(v, (int, float))]
    return ", ".join(shown[:4]) or "no numbers"


def rerender(raw_path: Path, out: Path) -> int:
    """Write the report again from a raw results file (no measuring)."""
    raw = json.loads(raw_path.read_text())
    runs = raw["runs"]
    systems = [s for s in SYSTEMS if any(r["system"] == s for r in runs)]
    workloads = [w for w in WORKLOADS if any(r["workload"] == w for r in runs)]
    meta = report.Meta.from_json(raw["meta"])
    out.write_text(report.render(meta, systems, workloads, runs, raw["imports"]))
    log(f"wrote {out} from {raw_path}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.from_json is not None:
        return rerender(args.from_json, args.out)
    started = dt.datetime.now(dt.timezone.utc)
    env_names = sorted({SYSTEMS[s].env for s in args.systems}, key=list(ENVS).index)
    envs = prepare(env_names, args.ours_src)
    runs: list[dict[str, Any]] = []
    timed = [w for w in args.workloads if w != "import"]
    for repeat in range(args.repeats):
        # Interleave systems, alternating direction (ABC CBA ABC) so a slow
        # phase of the machine does not always hit the same system.
        order = args.systems if repeat % 2 == 0 else list(reversed(args.systems))
        for workload in timed:
            for system in order:
                result = run_one(envs[SYSTEMS[system].env], system, workload, args.quick)
                result["repeat"] = repeat
                runs.append(result)
                took = result.get("seconds", 0.0)
                log(
                    f"[{repeat + 1}/{args.repeats}] {workload} {system:<20} {took:6.1f}s  "
                    f"{describe_run(result)}"
                )
    imports: dict[str, dict[str, Any]] = {}
    if "import" in args.workloads:
        for name in env_names:
            env = envs[name]
            if env.python is None or env.cwd is None:
                imports[name] = {"ok": False, "error": env.error}
                continue
            imports[name] = import_time.measure(env.python, env.cwd, ENVS[name].import_stmt)
            log(f"import {name:<8} {imports[name]}")
    meta = report.Meta(
        started=started,
        finished=dt.datetime.now(dt.timezone.utc),
        argv=["python", "-m", "bench", *(argv if argv is not None else sys.argv[1:])],
        quick=args.quick,
        repeats=args.repeats,
        envs={name: {"error": env.error, **env.versions} for name, env in envs.items()},
        ours_src=describe_source(args.ours_src) if "ours" in envs else None,
    )
    raw = {"meta": meta.as_json(), "runs": runs, "imports": imports}
    raw_dir = ROOT / "bench" / "results"
    raw_dir.mkdir(exist_ok=True)
    raw_path = raw_dir / f"{started:%Y%m%dT%H%M%SZ}.json"
    raw_path.write_text(json.dumps(raw, indent=1))
    args.out.write_text(report.render(meta, args.systems, timed, runs, imports))
    log(f"wrote {args.out} (raw data: {raw_path.relative_to(ROOT)})")
    return 0
