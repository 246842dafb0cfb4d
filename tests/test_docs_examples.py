"""The Python examples in README.md and docs/*.md run as printed.

Every ```` ```python ```` block is a program of its own and is run in a fresh
interpreter, with a time limit. Two HTML comments on the line before a block
(invisible on the rendered page) change that:

- ``<!-- not-run -->``: a fragment (it uses names the page does not define, or
  ``await`` outside a function). It is only compiled. Keep these few.
- ``<!-- continues -->``: the block goes on from the previous block of the same
  page (a program built step by step); they run together.

How a block runs:

- A block that defines ``test_*`` functions is a pytest file: it is run with
  pytest (anyio's plugin in auto mode, as docs/testing.md sets it up).
- Otherwise it runs as ``__main__``. ``await anyio.sleep_forever()`` and
  ``await trio.sleep_forever()`` (an app that serves until stopped) become a
  half-second sleep, so the program ends.
- Every name it uses must be defined in it (or be a builtin), even inside a
  function that the run never calls.
- If it leaves a Starlette or FastAPI ``app`` behind, the app's lifespan is
  started and stopped with Starlette's ``TestClient``: no server, no port.
"""

from __future__ import annotations

import ast
import builtins
import importlib.util
import os
import re
import subprocess
import symtable
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

NOT_RUN = "<!-- not-run -->"
CONTINUES = "<!-- continues -->"
TIME_LIMIT = 45.0

_FENCE = re.compile(r"^(?P<indent>[ \t]*)```(?P<lang>[\w+-]*)\s*$")
_FOREVER = re.compile(r"await (anyio|trio)\.sleep_forever\(\)")

# Runs in the child interpreter: the block's path is argv[1].
_RUNNER = """
import runpy, sys
namespace = runpy.run_path(sys.argv[1], run_name="__main__")
app = namespace.get("app")
try:
    from starlette.applications import Starlette
    from starlette.testclient import TestClient
except ImportError:
    Starlette = None
if Starlette is not None and isinstance(app, Starlette):
    with TestClient(app):
        pass
"""


@dataclass
class Example:
    page: Path
    line: int  # 1-based line of the opening fence
    source: str
    run: bool
    continues: bool

    @property
    def name(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def _marker_before(lines: list[str], index: int) -> str | None:
    for previous in reversed(lines[:index]):
        text = previous.strip()
        if text:
            return text if text in (NOT_RUN, CONTINUES) else None
    return None


def extract(page: Path) -> list[Example]:
    """The page's python blocks, in order."""
    lines = page.read_text(encoding="utf-8").splitlines()
    examples: list[Example] = []
    index = 0
    while index < len(lines):
        fence = _FENCE.match(lines[index])
        if fence is None:
            index += 1
            continue
        end = index + 1
        while end < len(lines) and lines[end].strip() != "```":
            end += 1
        if fence["lang"] in ("python", "py"):
            marker = _marker_before(lines, index)
            examples.append(
                Example(
                    page=page,
                    line=index + 1,
                    source=textwrap.dedent("\n".join(lines[index + 1 : end])) + "\n",
                    run=marker != NOT_RUN,
                    continues=marker == CONTINUES,
                )
            )
        index = end + 1
    return examples


def programs() -> list[tuple[str, str]]:
    """(name, source) of every program: a block with the blocks that continue it."""
    found: list[tuple[str, str]] = []
    for page in PAGES:
        for example in extract(page):
            if not example.run:
                continue
            if example.continues:
                assert found and found[-1][0].startswith(f"{example.page.relative_to(ROOT)}:"), (
                    f"{example.name}: {CONTINUES} with no block before it on the page"
                )
                name, source = found[-1]
                found[-1] = (name, source + "\n\n" + example.source)
            else:
                found.append((example.name, example.source))
    return found


def fragments() -> list[tuple[str, str]]:
    return [(e.name, e.source) for page in PAGES for e in extract(page) if not e.run]


def undefined_names(source: str, name: str) -> set[str]:
    """Module-level names the program uses but never defines (a program that
    names a helper only inside a function that never runs still fails here)."""
    top = symtable.symtable(source, name, "exec")
    defined = set(dir(builtins)) | {"__file__", "__name__"}
    defined |= {
        symbol.get_name()
        for symbol in top.get_symbols()
        if symbol.is_assigned() or symbol.is_imported() or symbol.is_namespace()
    }
    used: set[str] = set()
    pending = [top]
    while pending:
        table = pending.pop()
        for symbol in table.get_symbols():
            if not symbol.is_referenced():
                continue
            if table is top or symbol.is_global():
                used.add(symbol.get_name())
        pending.extend(table.get_children())
    return used - defined


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "NO_COLOR": "1"}
    try:
        return subprocess.run(
            args,
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=TIME_LIMIT,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"still running after {TIME_LIMIT} s; output so far:\n{exc.stdout}{exc.stderr}")


@pytest.mark.parametrize(("name", "source"), programs(), ids=[n for n, _ in programs()])
def test_example_runs(name: str, source: str, tmp_path: Path) -> None:
    tree = ast.parse(source, filename=name)
    if "trio" in source and importlib.util.find_spec("trio") is None:
        pytest.skip("trio is not installed")  # CI's asyncio-only job
    missing = undefined_names(source, name)
    assert not missing, f"{name} uses names it never defines: {sorted(missing)}"
    is_test_file = any(
        isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith("test_")
        for node in tree.body
    )
    if is_test_file:
        path = tmp_path / "test_example.py"
        path.write_text(source, encoding="utf-8")
        args = [sys.executable, "-m", "pytest", "-q", "-p", "anyio", "-p", "no:cacheprovider"]
        args += ["-o", "anyio_mode=auto", "--rootdir", str(tmp_path), str(path)]
    else:
        path = tmp_path / "example.py"
        path.write_text(_FOREVER.sub(r"await \1.sleep(0.5)", source), encoding="utf-8")
        args = [sys.executable, "-c", _RUNNER, str(path)]
    done = _run(args, tmp_path)
    assert done.returncode == 0, f"{name} failed:\n{done.stdout}\n{done.stderr}"
    # A pytest file that collected nothing would exit 5, not 0; a clean run of
    # a plain program must not have logged an error or a traceback either.
    assert "Traceback" not in done.stderr, f"{name}:\n{done.stderr}"


@pytest.mark.parametrize(("name", "source"), fragments(), ids=[n for n, _ in fragments()])
def test_fragment_compiles(name: str, source: str) -> None:
    # Fragments may use top-level await (they show a line from inside a coroutine).
    compile(source, name, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)


def test_undefined_names_finds_helpers_only_a_function_uses() -> None:
    source = "import os\n\ndef handler(folder):\n    return resize(list_images(folder), os.sep)\n"
    assert undefined_names(source, "example") == {"list_images", "resize"}


def test_quick_start_is_run() -> None:
    """The README's quick start examples are programs, never skipped fragments."""
    readme = extract(ROOT / "README.md")
    assert readme, "README.md has no python blocks"
    assert all(example.run for example in readme)
