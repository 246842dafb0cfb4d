"""``python -m bench``: run the benchmark suite (see bench/README.md)."""

from __future__ import annotations

from bench.orchestrator import main

raise SystemExit(main())
