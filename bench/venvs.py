"""The systems under test and the interpreters they run in.

Each peer gets a throwaway venv under ``bench/.venvs/<env>``, created with
``uv venv`` + ``uv pip install`` and reused while its spec is unchanged.
Our own quiv runs in the project's ``.venv`` (synced with the ``bench``
group, which adds psutil; trio comes with the default groups).

quiv 1.4 on PyPI has our import name, so a peer runner must never see the
repository root on ``sys.path``: peers run with their working directory in
``bench/.venvs/_src``, which holds only a link to ``bench/``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENVS = ROOT / "bench" / ".venvs"
SRC = VENVS / "_src"


class EnvError(RuntimeError):
    """A venv could not be prepared."""


@dataclass(frozen=True)
class Env:
    """One interpreter with one scheduler installed."""

    name: str
    label: str
    #: what ``uv pip install`` gets; empty for the project's own venv
    requirements: tuple[str, ...]
    #: the statement timed by ``bench.import_time``
    import_stmt: str
    #: distributions whose versions go into the report
    dists: tuple[str, ...]


@dataclass(frozen=True)
class System:
    """One column of the report: a scheduler, in one configuration."""

    name: str
    env: str
    runner: str
    description: str
    #: a floor: what the machine does with no scheduler (a reference, not a peer)
    floor: bool = False


ENVS: dict[str, Env] = {
    env.name: env
    for env in (
        Env(
            name="ours",
            label="quiv (this repo)",
            requirements=(),
            import_stmt="import quiv",
            dists=("quiv", "anyio", "sniffio", "aiosqlite", "trio", "cronsim", "psutil"),
        ),
        Env(
            name="quiv14",
            label="quiv 1.4 (PyPI)",
            requirements=("quiv==1.4.0", "psutil", "anyio>=4.11"),
            import_stmt="import quiv",
            dists=("quiv", "sqlmodel", "SQLAlchemy", "pydantic", "anyio", "psutil"),
        ),
        Env(
            name="aps3",
            label="APScheduler 3.11",
            requirements=("APScheduler==3.11.*", "psutil", "uvicorn"),
            import_stmt="import apscheduler.schedulers.asyncio",
            dists=("APScheduler", "tzlocal", "psutil"),
        ),
        Env(
            name="aps4",
            label="APScheduler 4.0.0a6",
            requirements=("APScheduler==4.0.0a6", "psutil", "uvicorn"),
            import_stmt="import apscheduler",
            dists=("APScheduler", "anyio", "attrs", "tenacity", "psutil"),
        ),
    )
}

SYSTEMS: dict[str, System] = {
    system.name: system
    for system in (
        System(
            "quiv-sync",
            "ours",
            "bench.runner_quiv",
            "`Quiv` face: start() inside a running asyncio loop, methods called on it",
        ),
        System(
            "quiv-async-asyncio",
            "ours",
            "bench.runner_quiv",
            "`async with AsyncQuiv(pool_size=10)` under anyio.run(backend='asyncio')",
        ),
        System(
            "quiv-async-trio",
            "ours",
            "bench.runner_quiv",
            "`async with AsyncQuiv(pool_size=10)` under anyio.run(backend='trio')",
        ),
        System(
            "quiv14",
            "quiv14",
            "bench.runner_quiv14",
            "quiv 1.4.0: `Quiv(pool_size=10, main_loop=<running asyncio loop>)`",
        ),
        System(
            "aps3",
            "aps3",
            "bench.runner_aps3",
            "APScheduler 3.11: AsyncIOScheduler, ThreadPoolExecutor(10), "
            "AsyncIOExecutor for `async def`",
        ),
        System(
            "aps4",
            "aps4",
            "bench.runner_aps4",
            "APScheduler 4.0.0a6: AsyncScheduler, memory store, "
            "threadpool executor (10) for sync, async executor for `async def`",
        ),
        System(
            "floor-threads",
            "ours",
            "bench.runner_floor",
            "no scheduler: a bare ThreadPoolExecutor(10), one host-loop callback per job "
            "(W1); one threading.Event set and seen across two threads (W6)",
            floor=True,
        ),
        System(
            "floor-async",
            "ours",
            "bench.runner_floor",
            "no scheduler: bare tasks on one worker-thread asyncio loop, each completion "
            "posted back to the host loop (W2)",
            floor=True,
        ),
    )
}

OURS = tuple(name for name, system in SYSTEMS.items() if system.env == "ours" and not system.floor)
FLOORS = tuple(name for name, system in SYSTEMS.items() if system.floor)
PEERS = tuple(name for name, system in SYSTEMS.items() if system.env != "ours")


def _run(args: list[str], cwd: Path | None = None) -> None:
    proc = subprocess.run(args, cwd=cwd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        lines = (proc.stderr or proc.stdout).strip().splitlines() or ["(no output)"]
        raise EnvError(f"`{' '.join(args[:3])} …` failed: {lines[-1]}")


def base_python() -> str:
    """The interpreter every peer venv is built from: the one running us."""
    return getattr(sys, "_base_executable", None) or sys.executable


def clean_environ() -> dict[str, str]:
    """The environment for runner processes: no venv or path leaking in."""
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "VIRTUAL_ENV"}}
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _ensure_src() -> Path:
    link = SRC / "bench"
    if not link.exists():
        SRC.mkdir(parents=True, exist_ok=True)
        try:
            link.symlink_to(ROOT / "bench", target_is_directory=True)
        except OSError:
            shutil.copytree(ROOT / "bench", link, ignore=shutil.ignore_patterns(".venvs"))
    return SRC


def _ours_dir(source: Path) -> Path:
    """A working directory where ``import quiv`` finds *source*/quiv."""
    if not (source / "quiv" / "__init__.py").is_file():
        raise EnvError(f"--ours-src {source}: no quiv/__init__.py there")
    target = VENVS / "_ours"
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    (target / "quiv").symlink_to(source.resolve() / "quiv", target_is_directory=True)
    (target / "bench").symlink_to(ROOT / "bench", target_is_directory=True)
    return target


def ensure_env(name: str, ours_src: Path | None = None) -> tuple[Path, Path]:
    """Make sure the env exists; return ``(python, working directory)``.

    *ours_src* runs our quiv from another source tree (say a ``git worktree``
    of an older commit) with the project's venv; default: this checkout.
    """
    env = ENVS[name]
    if not env.requirements:
        _run(["uv", "sync", "--frozen", "--inexact", "--group", "bench", "--quiet"], ROOT)
        cwd = ROOT if ours_src is None else _ours_dir(ours_src)
        return ROOT / ".venv" / "bin" / "python", cwd
    target = VENVS / name
    python = target / "bin" / "python"
    marker = target / ".bench-spec"
    spec = json.dumps({"python": sys.version, "requirements": env.requirements})
    if not python.exists() or not marker.exists() or marker.read_text() != spec:
        shutil.rmtree(target, ignore_errors=True)
        _run(["uv", "venv", "--quiet", "--python", base_python(), str(target)])
        _run(["uv", "pip", "install", "--quiet", "--python", str(python), *env.requirements])
        marker.write_text(spec)
    return python, _ensure_src()


_DESCRIBE = """
import importlib.metadata as m, json, platform, sys
out = {"python": platform.python_version()}
for name in sys.argv[1:]:
    try:
        out[name] = m.version(name)
    except m.PackageNotFoundError:
        out[name] = None
print(json.dumps(out))
"""


def describe(name: str, python: Path, cwd: Path) -> dict[str, str | None]:
    """Python and package versions inside one env."""
    proc = subprocess.run(
        [str(python), "-c", _DESCRIBE, *ENVS[name].dists],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
        env=clean_environ(),
    )
    try:
        return dict(json.loads(proc.stdout.strip().splitlines()[-1]))
    except (IndexError, ValueError):
        return {"python": None}
