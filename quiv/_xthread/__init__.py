"""Crossing threads: worker threads and their ready queue, running one job, loop hand-offs."""
