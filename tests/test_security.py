"""Security: the temporary store is private, nothing in it is ever unpickled or
evaluated, and no API turns a user's string into code or SQL."""

from __future__ import annotations

import ast
import contextlib
import os
import pickle
import sqlite3
import stat
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from scheduler_helpers import WAIT, Recorder

import quiv
from quiv import AsyncQuiv, ConfigurationError, Event, JobStatus
from quiv.testing import FakeClock

QUIV_DIR = Path(quiv.__file__).parent
SOURCES = sorted(QUIV_DIR.rglob("*.py"))

#: modules that turn bytes into arbitrary objects (or code)
UNPICKLERS = {"pickle", "_pickle", "cPickle", "marshal", "shelve", "dill", "cloudpickle"}
UNPICKLERS |= {"copyreg", "jsonpickle", "joblib", "dbm"}
#: builtins that run strings as code
EVALUATORS = {"eval", "exec", "compile", "__import__", "execfile", "input"}


def _trees() -> Iterator[tuple[Path, ast.AST]]:
    assert len(SOURCES) > 20, SOURCES  # the whole package, not an empty glob
    for path in SOURCES:
        yield path, ast.parse(path.read_text(encoding="utf-8"), str(path))


def _name(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_name(node.value)}.{node.attr}"
    return ""


def test_quiv_never_imports_an_unpickler() -> None:
    found = []
    for path, tree in _trees():
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            elif isinstance(node, ast.Call) and _name(node.func).endswith(
                ("import_module", "__import__")
            ):
                # dynamic imports: only of constant names, and none of these
                arg = node.args[0] if node.args else None
                assert isinstance(arg, ast.Constant), f"{path}:{node.lineno}: dynamic import"
                names = [str(arg.value)]
            found += [
                f"{path.name}:{node.lineno} {n}" for n in names if n.split(".")[0] in UNPICKLERS
            ]
    assert found == []


def test_quiv_never_evaluates_strings() -> None:
    found = []
    for path, tree in _trees():
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                name = _name(node.func)
                if name in EVALUATORS or name.split(".")[-1] in {"eval", "exec"}:
                    found.append(f"{path.name}:{node.lineno} {name}()")
                if name.endswith("literal_eval"):
                    found.append(f"{path.name}:{node.lineno} {name}()")
            # subprocess with shell=True would run a string through a shell
            if isinstance(node, ast.keyword) and node.arg == "shell":
                found.append(f"{path.name}:{node.value.lineno} shell=")
    assert found == []


def test_the_scanners_do_find_what_they_look_for() -> None:
    """The two scans above can fail: they catch every form they look for."""
    sample = ast.parse(
        "import pickle\nfrom marshal import loads\nimport importlib\n"
        "importlib.import_module('shelve')\neval('1')\nbuiltins.exec('x')\n"
        "subprocess.run('ls', shell=True)\n"
    )
    imports = [n for n in ast.walk(sample) if isinstance(n, (ast.Import, ast.ImportFrom))]
    calls = {_name(n.func) for n in ast.walk(sample) if isinstance(n, ast.Call)}
    assert len(imports) == 3
    assert {"eval", "builtins.exec", "importlib.import_module", "subprocess.run"} <= calls


# -- the temporary store is private --------------------------------------------------


@pytest.fixture
def open_umask(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Path]:
    """A world-writable umask and a temp dir of our own: privacy must not rely on
    the user's umask."""
    directory = tmp_path / "tmp"
    directory.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(directory))
    old = os.umask(0)
    try:
        yield directory
    finally:
        os.umask(old)


def _mode(path: str | Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


async def test_the_temporary_store_is_private_and_removed(open_umask: Path) -> None:
    async with AsyncQuiv(clock=FakeClock()) as s:
        rec = Recorder(s)
        for i in range(5):
            await s.add_task(f"t{i}", lambda: None, run_once=True)
        await rec.wait_count(Event.JOB_COMPLETED, 5)
        assert len(await s.get_all_jobs()) == 5  # written: the journal files exist now
        (directory,) = os.listdir(open_umask)
        directory_path = open_umask / directory
        assert _mode(directory_path) == 0o700
        files = os.listdir(directory_path)
        assert "quiv.db" in files
        assert {f for f in files if f != "quiv.db"} <= {"quiv.db-wal", "quiv.db-shm"}
        for name in files:
            assert _mode(directory_path / name) & 0o077 == 0, (
                name,
                oct(_mode(directory_path / name)),
            )
    assert os.listdir(open_umask) == []


async def test_a_new_database_file_is_created_private(open_umask: Path, tmp_path: Path) -> None:
    db = tmp_path / "history.db"
    async with AsyncQuiv(clock=FakeClock(), db_path=db) as s:
        await s.add_task("t", lambda: None, interval=60)
        assert len(await s.get_all_tasks()) == 1
        for name in os.listdir(tmp_path):
            if name.startswith("history.db"):
                assert _mode(tmp_path / name) & 0o077 == 0, name


# -- nothing is pickled or unpickled ----------------------------------------------------


class Unpicklable:
    """Refuses to be pickled: proof that quiv never tries."""

    def __reduce__(self) -> Any:
        raise AssertionError("quiv tried to pickle a handler argument")


async def test_arguments_stay_in_memory_and_the_store_holds_only_text(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("quiv unpickled something")

    for name in ("loads", "load", "Unpickler"):
        monkeypatch.setattr(pickle, name, refuse)
    db = tmp_path / "q.db"
    results: list[Any] = []
    lock = threading.Lock()
    secret = 42

    async with AsyncQuiv(clock=FakeClock(), db_path=db) as s:
        task_id = await s.add_task(
            "closures",
            lambda get, lock, obj, key: results.append((get(), lock.locked(), obj, key)),
            run_once=True,
            args=(lambda: secret, lock, Unpicklable()),
            kwargs={"key": (x for x in range(3))},
        )
        (job,) = await s.get_all_jobs(task_id=task_id)
        job = await s.wait_for_job(job.id, timeout=WAIT)
        assert job.status is JobStatus.COMPLETED, job
    assert results[0][0] == 42
    assert results[0][1] is False
    assert isinstance(results[0][2], Unpicklable)
    # every value in the file is text or a number: nothing to unpickle
    with contextlib.closing(sqlite3.connect(db)) as conn:
        for (table,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'"):
            for row in conn.execute(f"SELECT * FROM {table}"):  # table names from SQLite
                assert all(isinstance(v, (str, int, float, type(None))) for v in row), row
        columns = {row[1] for row in conn.execute("PRAGMA table_info(tasks)")}
        assert columns and not columns & {"args", "kwargs"}


# -- user strings are data, never code or SQL -------------------------------------------

HOSTILE = [
    "__import__('os').system('touch PWNED')",
    "{0.__class__.__mro__[1].__subclasses__()}",
    "%s %d %(name)s %n",
    "'; DROP TABLE jobs; --",
    "x' OR '1'='1",
    "\x00\n\r\t\u202e",
    "${jndi:ldap://example.invalid/a}",
]


async def test_hostile_strings_are_kept_verbatim_and_never_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.chdir(tmp_path)
    db = tmp_path / "q.db"

    def fails(text: str) -> None:
        raise ValueError(text)

    async with AsyncQuiv(clock=FakeClock(), db_path=db) as s:
        rec = Recorder(s)
        ids = {}
        for text in HOSTILE:
            ids[text] = await s.add_task(text, fails, run_once=True, args=(text,))
        await rec.wait_count(Event.JOB_FAILED, len(HOSTILE))
        for job in rec.jobs(Event.JOB_FAILED):
            assert job.task_name in HOSTILE
            assert job.error_message == f"ValueError: {job.task_name}"
        for text, task_id in ids.items():
            # the same string as a filter: bound as a parameter, matched exactly
            (job,) = await s.get_all_jobs(task_id=task_id)
            assert job.task_name == text
            assert await s.get_all_jobs(task_id=text) == []
        assert len(await s.get_all_jobs()) == len(HOSTILE)
        with pytest.raises(ConfigurationError):
            await s.get_all_jobs(order_by="started_at; DROP TABLE jobs")
        recurring = await s.add_task("%s {0} ${x}", lambda: None, interval=60, delay=60)
        task = await s.update_task(recurring, task_name=HOSTILE[0])
        assert task.task_name == HOSTILE[0]
        assert [t.task_name for t in await s.get_all_tasks(task_name=HOSTILE[0])] == [HOSTILE[0]]
    assert not (tmp_path / "PWNED").exists()
    failures = [r for r in caplog.records if "failed" in r.getMessage()]
    assert len(failures) == len(HOSTILE)  # every log line formatted, none crashed
    async with AsyncQuiv(db_path=db) as s:
        assert len(await s.get_all_jobs()) == len(HOSTILE)  # the tables are intact


def test_timezone_names_are_looked_up_never_evaluated(tmp_path: Path) -> None:
    for name in ("__import__('os').getcwd()", "../../../../etc/passwd", "/etc/localtime"):
        with pytest.raises(ConfigurationError):
            AsyncQuiv(timezone=name)
