"""Import time of each system, in its own interpreter (median of 10).

Two numbers per env: the cumulative time ``python -X importtime`` reports
for the imported module and its parents (the import itself, no interpreter
start-up), and the wall time of ``python -c "<import>"`` minus that of
``python -c pass`` (interleaved, medians).

Standalone: ``uv run python -m bench.import_time [env ...]``.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.venvs import ENVS, EnvError, clean_environ, ensure_env

SAMPLES = 10


def _importtime_us(stderr: str, module: str) -> float:
    """Sum the top-level cumulative times of *module* and its parent packages."""
    parts = module.split(".")
    wanted = {".".join(parts[: i + 1]) for i in range(len(parts))}
    total = 0.0
    for line in stderr.splitlines():
        if not line.startswith("import time:"):
            continue
        fields = line.split("|")
        if len(fields) != 3:
            continue
        name = fields[2][1:]
        if name in wanted:  # top level only: nested names are indented
            total += float(fields[1])
    return total


def _wall(python: Path, cwd: Path, code: str) -> float:
    started = time.perf_counter()
    subprocess.run([str(python), "-c", code], cwd=cwd, env=clean_environ(), check=True)
    return time.perf_counter() - started


def measure(python: Path, cwd: Path, stmt: str) -> dict[str, Any]:
    """Median import cost of *stmt* (``import x.y``) in the interpreter *python*."""
    module = stmt.split()[1]
    cumulative: list[float] = []
    with_import: list[float] = []
    bare: list[float] = []
    try:
        for _ in range(SAMPLES):
            proc = subprocess.run(
                [str(python), "-X", "importtime", "-c", stmt],
                cwd=cwd,
                env=clean_environ(),
                capture_output=True,
                text=True,
                check=True,
            )
            cumulative.append(_importtime_us(proc.stderr, module) / 1000.0)
            bare.append(_wall(python, cwd, "pass"))
            with_import.append(_wall(python, cwd, stmt))
    except subprocess.CalledProcessError as exc:
        lines = [line for line in (exc.stderr or "").splitlines() if line.strip()]
        return {"ok": False, "error": lines[-1] if lines else f"exit code {exc.returncode}"}
    return {
        "ok": True,
        "metrics": {
            "import_ms": statistics.median(cumulative),
            "wall_ms": (statistics.median(with_import) - statistics.median(bare)) * 1000.0,
        },
        "samples": SAMPLES,
    }


def main(names: list[str]) -> int:
    for name in names or list(ENVS):
        try:
            python, cwd = ensure_env(name)
        except EnvError as exc:
            print(f"{name:<8} error: {exc}")
            continue
        result = measure(python, cwd, ENVS[name].import_stmt)
        if result["ok"]:
            m = result["metrics"]
            print(f"{name:<8} import {m['import_ms']:7.1f} ms   wall +{m['wall_ms']:7.1f} ms")
        else:
            print(f"{name:<8} error: {result['error']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
