"""quiv's benchmark suite: quiv side by side with its peers (see README.md).

Run ``uv run python -m bench``. Stdlib only at import time: this package is
also imported inside the peers' venvs.
"""
