"""Aggregate the runs (median and min–max per metric) and render RESULTS.md."""

from __future__ import annotations

import datetime as dt
import os
import platform
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from bench.stats import Spread, spread
from bench.targets import TARGETS, Lookup
from bench.venvs import ENVS, FLOORS, OURS, PEERS, ROOT, SYSTEMS
from bench.workloads import IMPORT_METRICS, WORKLOADS, Metric


@dataclass
class Meta:
    """When, where and how the suite ran."""

    started: dt.datetime
    finished: dt.datetime
    argv: list[str]
    quick: bool
    repeats: int
    envs: dict[str, dict[str, Any]]
    #: where our quiv was imported from, when it ran
    ours_src: str | None = None
    machine: dict[str, str] = field(default_factory=lambda: machine())

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Meta:
        return cls(
            started=dt.datetime.fromisoformat(data["started"]),
            finished=dt.datetime.fromisoformat(data["finished"]),
            argv=data["argv"],
            quick=data["quick"],
            repeats=data["repeats"],
            envs=data["envs"],
            ours_src=data.get("ours_src"),
            machine=data["machine"],
        )

    def as_json(self) -> dict[str, Any]:
        return {
            "started": self.started.isoformat(),
            "finished": self.finished.isoformat(),
            "argv": self.argv,
            "quick": self.quick,
            "repeats": self.repeats,
            "envs": self.envs,
            "ours_src": self.ours_src,
            "machine": self.machine,
        }


def machine() -> dict[str, str]:
    cpu = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    memory = "unknown"
    try:
        with open("/proc/meminfo") as f:
            kib = int(next(line.split()[1] for line in f if line.startswith("MemTotal")))
        memory = f"{kib / 1024 / 1024:.1f} GiB"
    except (OSError, StopIteration, ValueError):
        pass
    commit = subprocess.run(
        ["git", "describe", "--always", "--dirty"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    return {
        "cpu": cpu,
        "cores": str(os.cpu_count()),
        "memory": memory,
        "os": platform.platform(),
        "commit": commit or "unknown",
    }


# -- aggregation -------------------------------------------------------------------


@dataclass
class Cell:
    """What one (system, workload) pair produced over its repeats."""

    spreads: dict[str, Spread] = field(default_factory=dict)
    reasons: dict[str, str] = field(default_factory=dict)
    #: set when no repeat produced numbers
    whole: str | None = None
    failures: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def aggregate(runs: Iterable[dict[str, Any]]) -> dict[tuple[str, str], Cell]:
    grouped: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for run in runs:
        grouped.setdefault((run["system"], run["workload"]), []).append(run)
    return {key: _cell(group) for key, group in grouped.items()}


def _cell(group: list[dict[str, Any]]) -> Cell:
    cell = Cell()
    good = [r for r in group if r.get("ok") and "unsupported" not in r]
    cell.failures = [str(r.get("error")) for r in group if not r.get("ok")]
    unsupported = [r["unsupported"] for r in group if r.get("ok") and "unsupported" in r]
    if not good:
        cell.whole = f"n/a ({unsupported[0]})" if unsupported else f"error: {cell.failures[0]}"
        return cell
    values: dict[str, list[float]] = {}
    for run in good:
        for key, value in run["metrics"].items():
            if value is None:
                cell.reasons.setdefault(key, run["reasons"].get(key, "no value"))
            else:
                values.setdefault(key, []).append(float(value))
        cell.notes.extend(n for n in run.get("notes", []) if n not in cell.notes)
    cell.spreads = {key: spread(vals) for key, vals in values.items()}
    return cell


# -- rendering ---------------------------------------------------------------------


def fmt(value: float) -> str:
    magnitude = abs(value)
    if magnitude >= 99.5 or float(value).is_integer():
        return f"{value:,.0f}"
    if magnitude >= 10:
        return f"{value:.1f}"
    if magnitude >= 1:
        return f"{value:.2f}"
    return f"{value:.3f}"


def render_value(cell: Cell | None, metric: Metric, first_row: bool) -> str:
    if cell is None:
        return "—"
    if cell.whole is not None:
        return cell.whole if first_row else "″"
    found = cell.spreads.get(metric.key)
    if found is None:
        reason = cell.reasons.get(metric.key)
        if reason is None:
            return "—"
        return "never" if reason.startswith("never") else f"n/a ({reason})"
    if metric.kind == "bool":
        return "yes" if found.low >= 1 else ("no" if found.high < 1 else "mixed")
    text = fmt(found.median)
    if found.count > 1 and fmt(found.low) != fmt(found.high):
        text += f" ({fmt(found.low)}–{fmt(found.high)})"
    failed = len(cell.failures)
    if failed and first_row:
        text += f" [{failed} run(s) failed: {cell.failures[0]}]"
    return text


def _escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(_escape(h) for h in header) + " |"]
    lines.append("|" + "|".join("---" for _ in header) + "|")
    lines.extend("| " + " | ".join(_escape(c) for c in row) + " |" for row in rows)
    return lines


def _arrow(metric: Metric) -> str:
    return {"higher": " ↑", "lower": " ↓", None: ""}[metric.better]


def _ratio(ours: Spread | None, peer: Spread | None) -> str:
    if ours is None or peer is None:
        return "—"
    if peer.median == 0:
        return "—" if ours.median else "1.00x"
    return f"{ours.median / peer.median:.2f}x"


def workload_section(
    workload: str, systems: list[str], cells: dict[tuple[str, str], Cell]
) -> list[str]:
    spec = WORKLOADS[workload]
    out = [f"### {spec.title}", ""]
    rows = [
        [metric.label + _arrow(metric)]
        + [render_value(cells.get((s, workload)), metric, i == 0) for s in systems]
        for i, metric in enumerate(spec.metrics)
    ]
    out += _table(["metric", *systems], rows)
    ours = [s for s in systems if s in OURS]
    peers = [s for s in systems if s in PEERS or s in FLOORS]  # a floor gets a column too
    ratioed = [m for m in spec.metrics if m.better]
    # peers with no number for any ratioed metric get no column
    peers = [
        p for p in peers if any(m.key in cells.get((p, workload), Cell()).spreads for m in ratioed)
    ]
    ratio_rows = []
    for metric in ratioed:
        for system in ours:
            mine = cells.get((system, workload), Cell()).spreads.get(metric.key)
            theirs = [cells.get((p, workload), Cell()).spreads.get(metric.key) for p in peers]
            if mine is None or not any(theirs):
                continue
            ratio_rows.append(
                [f"{metric.label}{_arrow(metric)}", system, *(_ratio(mine, t) for t in theirs)]
            )
    if ratio_rows:
        out += ["", "Ratio ours / peer (medians):", ""]
        out += _table(["metric", "ours", *(f"vs {p}" for p in peers)], ratio_rows)
    notes = [f"{s}: {note}" for s in systems for note in cells.get((s, workload), Cell()).notes]
    if notes:
        out += ["", *(f"- {note}" for note in notes)]
    return [*out, ""]


def import_section(imports: dict[str, dict[str, Any]]) -> list[str]:
    rows = []
    for metric in IMPORT_METRICS:
        row = [metric.label + _arrow(metric)]
        for name in imports:
            result = imports[name]
            row.append(
                fmt(result["metrics"][metric.key])
                if result.get("ok")
                else f"error: {result.get('error')}"
            )
        rows.append(row)
    header = ["metric", *(f"{ENVS[n].label}" for n in imports)]
    return [
        "### Import time (median of 10 fresh interpreters)",
        "",
        *_table(header, rows),
        "",
    ]


def targets_section(
    systems: list[str],
    cells: dict[tuple[str, str], Cell],
    imports: dict[str, dict[str, Any]],
) -> list[str]:
    ours = [s for s in systems if s in OURS]
    if not ours:
        return []

    def lookup(system: str, workload: str, key: str) -> float | None:
        if workload == "import":
            found = imports.get(SYSTEMS[system].env, {})
            return found.get("metrics", {}).get(key) if found.get("ok") else None
        cell = cells.get((system, workload))
        value = cell.spreads.get(key) if cell else None
        return value.median if value else None

    get: Lookup = lookup
    rows = []
    for target in TARGETS:
        row = [target.label]
        for system in ours:
            verdict = target.check(get, system)
            row.append("—" if verdict is None else ("✅ " if verdict[0] else "❌ ") + verdict[1])
        rows.append(row)
    return [
        "## Targets from issues 7, 12, 14 and 19 (medians of this run)",
        "",
        *_table(["target", *ours], rows),
        "",
    ]


def render(
    meta: Meta,
    systems: list[str],
    workloads: list[str],
    runs: list[dict[str, Any]],
    imports: dict[str, dict[str, Any]],
) -> str:
    cells = aggregate(runs)
    systems = sorted(systems, key=list(SYSTEMS).index)
    m = meta.machine
    sizes = "quick (smoke run, not comparable to full)" if meta.quick else "full"
    took = dt.timedelta(seconds=round((meta.finished - meta.started).total_seconds()))
    out = [
        "# quiv benchmark results",
        "",
        "Generated by `bench/` (see [bench/README.md](README.md)); do not edit by hand.",
        "",
        f"- command: `uv run {' '.join(meta.argv)}`",
        f"- sizes: {sizes}; repeats: {meta.repeats}, interleaved; cells are `median (min–max)`",
        f"- date: {meta.started:%Y-%m-%d %H:%M} UTC, took {took}",
        f"- machine: {m['cpu']}, {m['cores']} cores, {m['memory']}, {m['os']}",
        f"- repository: {m['commit']}",
        *([f"- our quiv imported from: {meta.ours_src}"] if meta.ours_src else []),
        "",
        "| env | Python | packages |",
        "|---|---|---|",
    ]
    for name, info in meta.envs.items():
        packages = ", ".join(
            f"{k} {v}" for k, v in info.items() if k not in {"python", "error"} and v
        )
        status = f"error: {info['error']}" if info.get("error") else packages
        out.append(f"| {ENVS[name].label} | {info.get('python') or '—'} | {_escape(status)} |")
    out += ["", "Systems:", ""]
    out += [f"- **{s}**: {SYSTEMS[s].description}" for s in systems]
    out += ["", *targets_section(systems, cells, imports), "## Workloads", ""]
    for workload in workloads:
        out += workload_section(workload, systems, cells)
    if imports:
        out += import_section(imports)
    return "\n".join(out).rstrip() + "\n"
