"""Database files: the private temporary database and its guaranteed removal.

``db_path=None`` means a fresh directory from :func:`tempfile.mkdtemp` (mode
0700) holding ``quiv.db`` created at mode 0600 before SQLite opens it. The
directory and everything in it (``-wal``, ``-shm``, ``-journal``) is removed by
:meth:`TempDatabase.remove`, or by a :func:`weakref.finalize` hook when the
owner is garbage-collected or the interpreter exits without closing it.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import weakref

__all__ = ("SIDE_FILE_SUFFIXES", "TempDatabase", "create_private_file")

#: files SQLite may create next to a database
SIDE_FILE_SUFFIXES = ("-wal", "-shm", "-journal")

_DB_NAME = "quiv.db"


def create_private_file(path: str) -> None:
    """Create *path* with mode 0600 if it does not exist yet (never truncates).

    :raises OSError: if the file cannot be created
    """
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except FileExistsError:
        return
    os.close(fd)


def _remove_tree(directory: str, db_file: str, creator: int) -> None:
    if os.getpid() != creator:
        # A forked child exits: the files belong to the parent, which still uses them.
        return
    for suffix in ("", *SIDE_FILE_SUFFIXES):
        try:
            os.unlink(db_file + suffix)
        except FileNotFoundError:
            pass
        except OSError:
            break
    try:
        os.rmdir(directory)
    except FileNotFoundError:
        pass
    except OSError:
        shutil.rmtree(directory, ignore_errors=True)


class TempDatabase:
    """A private directory holding one database file, removed exactly once.

    :param owner: the object whose lifetime bounds the files; when it is
        garbage-collected, or at interpreter exit, the files are removed
    :raises OSError: if the directory or file cannot be created
    """

    def __init__(self, owner: object) -> None:
        self.directory = tempfile.mkdtemp(prefix="quiv-")
        self.path = os.path.join(self.directory, _DB_NAME)
        self._finalizer = weakref.finalize(
            owner, _remove_tree, self.directory, self.path, os.getpid()
        )
        try:
            create_private_file(self.path)
        except BaseException:
            self._finalizer()
            raise

    @property
    def removed(self) -> bool:
        """Whether the files were removed already."""
        return not self._finalizer.alive

    def remove(self) -> None:
        """Remove the database, its side files and the directory (idempotent)."""
        self._finalizer()
