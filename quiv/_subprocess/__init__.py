"""Run a child process from a sync job, and stop it when the job is cancelled.

:func:`run_subprocess` is :func:`subprocess.run` for code that runs inside a
job. While it waits, the job can still be cancelled (``cancel_job``, the
task's ``timeout``, ``remove_task``, shutdown): the child is then terminated,
given ``kill_grace`` seconds, killed if it is still there, reaped, and
:class:`~quiv.JobCancelledError` is raised in the job.

How the waiting thread learns about a cancellation without polling: on Linux
(kernel 5.3 or later) the job thread sleeps in one ``poll()`` on the child's
pipes, a pidfd of the child (readable when it exits) and the read end of a
private wake-up pipe. The job's cancel callback, run by the cancelling thread,
only writes one byte to that pipe; everything else — signalling, the grace
period, reaping — happens on the job thread, which is also the only one that
reaps the child, so a signal can never reach a recycled process id. Where
there is no pidfd (macOS, Windows, older Linux), each pipe gets a thread of
its own (one writes the whole input, one reads each output to its end), and
the job thread waits for the child in slices of
:data:`~quiv._subprocess._stopper.POLL_INTERVAL` seconds.

The modules:

- :mod:`._run` — :func:`run_subprocess` itself: its parameters, starting the
  child, turning the outcome into a result or an exception;
- :mod:`._stopper` — when the child must stop (cancel, ``stop_event``,
  deadline), and stopping it: ``SIGTERM``, the grace period, ``SIGKILL``;
- :mod:`._wait` — waiting for the child to exit: one ``poll()`` with a pidfd,
  or wait slices where there is none;
- :mod:`._pipes` — the child's pipes on the pidfd path: feeding stdin,
  reading and draining output, decoding it as :mod:`subprocess` does;
- :mod:`._pipe_threads` — the child's pipes on the fallback path: a thread
  per pipe.
"""

from __future__ import annotations

from ._run import run_subprocess

__all__ = ("run_subprocess",)
