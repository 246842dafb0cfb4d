"""quiv after ``os.fork``, as a pre-fork server (gunicorn ``--preload``,
``uvicorn --workers``) does it: ids never repeat between parent and child,
and a scheduler started in the parent neither hangs nor harms the child.

Each case runs a fresh interpreter that forks, so the fork happens in a
process that only runs what the case needs (forking pytest itself would
copy its threads and open files).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork is POSIX-only")

#: bound for each forking script (it normally takes well under a second)
SCRIPT_TIMEOUT = 30


def _run(script: str) -> dict[str, object]:
    """Run *script*; it prints one JSON object on its last line."""
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)],
        capture_output=True,
        text=True,
        timeout=SCRIPT_TIMEOUT,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_ids_drawn_after_a_fork_differ_from_the_parents() -> None:
    result = _run(
        """
        import json, os
        from quiv._core.ids import new_id

        new_id()  # the parent has randomness pooled before the fork
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(read)
            ids = [new_id() for _ in range(300)]
            os.write(write, json.dumps(ids).encode())
            os._exit(0)
        os.close(write)
        parent = [new_id() for _ in range(300)]
        chunks = []
        while chunk := os.read(read, 1 << 16):
            chunks.append(chunk)
        _, status = os.waitpid(pid, 0)
        child = json.loads(b"".join(chunks))
        print(json.dumps({"parent": parent, "child": child, "status": status}))
        """
    )
    assert result["status"] == 0
    parent, child = result["parent"], result["child"]
    assert isinstance(parent, list) and isinstance(child, list)
    assert len(set(parent)) == len(parent) == 300
    assert len(set(child)) == len(child) == 300
    assert set(parent).isdisjoint(child)


def test_a_scheduler_running_in_the_parent_does_not_hang_or_harm_the_child() -> None:
    """The child finds the parent's scheduler stopped, starts its own, and exits cleanly.

    The job history is kept in memory here: SQLite itself does not survive a
    fork made while another thread is inside it (its own mutexes stay held in
    the child), which is why the docs say to start schedulers after the fork.
    """
    result = _run(
        """
        import json, os, warnings
        from quiv import Quiv, SchedulerStoppedError

        warnings.simplefilter("ignore", DeprecationWarning)  # fork() with threads running
        scheduler = Quiv(db_path=":memory:")
        scheduler.start()
        parent_job = scheduler.wait_for_task(
            scheduler.add_task("parent", lambda: None, run_once=True), timeout=10
        )
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(read)
            report = {}
            try:
                scheduler.get_all_tasks()
            except SchedulerStoppedError as exc:
                report["stopped"] = str(exc)
            scheduler.start()  # a new scheduler of this process's own
            task_id = scheduler.add_task("child", lambda: None, run_once=True)
            report["job"] = scheduler.wait_for_task(task_id, timeout=10).id
            report["status"] = scheduler.get_job(report["job"]).status.value
            scheduler.shutdown(timeout=5)
            os.write(write, json.dumps(report).encode())
            os.close(write)
            raise SystemExit(0)  # a normal exit: the exit hooks run in the child
        os.close(write)
        chunks = []
        while chunk := os.read(read, 1 << 16):
            chunks.append(chunk)
        _, status = os.waitpid(pid, 0)
        report = json.loads(b"".join(chunks))
        # the parent's scheduler survived the child's exit
        again = scheduler.add_task("after", lambda: None, run_once=True)
        report["parent_after"] = scheduler.wait_for_task(again, timeout=10).status.value
        report["parent_job"] = parent_job.id
        report["exit_status"] = status
        scheduler.shutdown(timeout=5)
        print(json.dumps(report))
        """
    )
    assert result["exit_status"] == 0
    assert "before this process was forked" in str(result["stopped"])
    assert "lifespan" in str(result["stopped"])
    assert result["status"] == "completed"
    assert result["job"] != result["parent_job"]
    assert result["parent_after"] == "completed"


def test_workers_forked_from_a_preloaded_app_each_run_its_tasks() -> None:
    """gunicorn --preload: the app (and its Quiv, with tasks declared) is imported
    before the fork; each worker starts the scheduler in its lifespan."""
    result = _run(
        """
        import json, os
        from quiv import Quiv

        scheduler = Quiv()  # created at import time, never started in the parent
        task_id = scheduler.add_task("warm cache", lambda: None, run_once=True)
        children = []
        for _ in range(3):
            read, write = os.pipe()
            pid = os.fork()
            if pid == 0:
                os.close(read)
                scheduler.start()  # the lifespan, in the worker
                job = scheduler.wait_for_task(task_id, timeout=10)
                database = scheduler.async_quiv._engine.store.path
                scheduler.shutdown(timeout=5)
                report = {"job": job.id, "status": job.status.value, "db": database}
                os.write(write, json.dumps(report).encode())
                os._exit(0)
            os.close(write)
            children.append((pid, read))
        reports = []
        for pid, read in children:
            chunks = []
            while chunk := os.read(read, 1 << 16):
                chunks.append(chunk)
            os.waitpid(pid, 0)
            reports.append(json.loads(b"".join(chunks)))
        print(json.dumps({"reports": reports}))
        """
    )
    reports = result["reports"]
    assert isinstance(reports, list) and len(reports) == 3
    assert {r["status"] for r in reports} == {"completed"}
    assert len({r["job"] for r in reports}) == 3  # no job id repeats across workers
    assert len({r["db"] for r in reports}) == 3  # each its own temporary database
    assert not any(os.path.exists(r["db"]) for r in reports)  # each removed by its worker


def test_an_async_scheduler_used_in_a_forked_child_says_it_was_forked() -> None:
    """Starting before the fork and using the scheduler after it is a clear error."""
    result = _run(
        """
        import asyncio, json, os, warnings
        from quiv import AsyncQuiv, SchedulerStoppedError

        warnings.simplefilter("ignore", DeprecationWarning)  # fork() with threads running

        async def main():
            async with AsyncQuiv(db_path=":memory:") as scheduler:
                read, write = os.pipe()
                pid = os.fork()
                if pid == 0:
                    try:
                        await scheduler.add_task("child", lambda: None, run_once=True)
                        message = "no error"
                    except SchedulerStoppedError as exc:
                        message = str(exc)
                    os.write(write, message.encode())
                    os._exit(0)
                os.close(write)
                message = os.read(read, 1 << 16).decode()
                os.waitpid(pid, 0)
                # the parent's scheduler is unharmed
                task_id = await scheduler.add_task("parent", lambda: None, run_once=True)
                job = await scheduler.wait_for_task(task_id, timeout=10)
                return {"child": message, "parent": job.status.value, "pid": os.getpid()}

        print(json.dumps(asyncio.run(main())))
        """
    )
    assert f"started in process {result['pid']}" in str(result["child"])
    assert "before this process was forked" in str(result["child"])
    assert result["parent"] == "completed"
