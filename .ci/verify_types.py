"""Fail unless ``pyright --verifytypes quiv`` finds quiv's public surface complete.

Run as ``uv run python .ci/verify_types.py`` (``.ci/run`` does). It requires a
type completeness score of 100% *and* no public function or class without a
docstring: pyright reports missing docstrings but does not count them in the
score or in its exit status.

``--ignoreexternal`` leaves out symbols that other packages (anyio, starlette)
own: their completeness is theirs to fix, and this check is about quiv's own.
"""

from __future__ import annotations

import json
import subprocess
import sys

COMMAND = ["pyright", "--verifytypes", "quiv", "--ignoreexternal"]


def main() -> int:
    done = subprocess.run([*COMMAND, "--outputjson"], capture_output=True, text=True, check=False)
    try:
        report = json.loads(done.stdout)["typeCompleteness"]
    except (ValueError, KeyError):
        sys.stderr.write(done.stdout + done.stderr)
        sys.stderr.write("pyright --verifytypes gave no report: failing\n")
        return 1
    score = report["completenessScore"]
    undocumented = report["missingFunctionDocStringCount"] + report["missingClassDocStringCount"]
    if score == 1 and undocumented == 0:
        sys.stdout.write("pyright --verifytypes quiv: 100%, every public symbol documented\n")
        return 0
    # Show pyright's own readable report, then say what fell short.
    subprocess.run(COMMAND, check=False)
    sys.stderr.write(
        f"type completeness {score:.1%} (needs 100%), "
        f"{undocumented} public functions or classes without a docstring (needs 0)\n"
    )
    return 1


if __name__ == "__main__":
    sys.exit(main())
