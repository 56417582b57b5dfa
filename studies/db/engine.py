"""Create the database engine: SQLite with durable settings, or PostgreSQL through a URL.

SQLite settings (each is why a committed answer survives a killed process or a power cut):
``journal_mode=WAL`` (readers do not block the writer), ``synchronous=FULL`` (the WAL is synced
at every commit), ``foreign_keys=ON``, ``busy_timeout`` (a writer waits for the lock instead of
failing) and every write transaction opened with ``BEGIN IMMEDIATE`` (the write lock is taken at
the start, so two writers never deadlock upgrading a read lock). Read-only work may use
``read_engine`` (plain ``BEGIN``), which never waits for the write lock.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event

from studies.errors import StudyError

#: How long a writer waits for another writer's lock before giving up (milliseconds).
BUSY_TIMEOUT_MS = 30_000

#: File systems on which SQLite must not live. SQLite's documentation (https://sqlite.org/wal.html,
#: "WAL does not work over a network filesystem"; https://sqlite.org/faq.html#q5, broken locking on
#: NFS) is the reason.
NETWORK_FILESYSTEMS = frozenset(
    {
        "nfs",
        "nfs4",
        "cifs",
        "smb",
        "smb2",
        "smb3",
        "smbfs",
        "sshfs",
        "fuse.sshfs",
        "afs",
        "9p",
        "v9fs",
        "ncpfs",
        "coda",
        "ceph",
        "fuse.ceph",
        "glusterfs",
        "fuse.glusterfs",
        "lustre",
        "gpfs",
        "davfs",
        "fuse.davfs2",
        "fuse.s3fs",
        "fuse.rclone",
        "fuse.gcsfuse",
        "fuse.juicefs",
        "ocfs2",
        "gfs2",
        "virtiofs",
        "fuse.vmhgfs-fuse",
        "vboxsf",
        "drvfs",
    }
)

MOUNTINFO = Path("/proc/self/mountinfo")


def is_url(db: str | Path) -> bool:
    """Return whether ``db`` is a database URL rather than a file path."""
    return isinstance(db, str) and "://" in db


def _unescape_mount(text: str) -> str:
    # /proc/self/mountinfo writes space, tab, newline and backslash as octal escapes.
    for code, char in (("\\040", " "), ("\\011", "\t"), ("\\012", "\n"), ("\\134", "\\")):
        text = text.replace(code, char)
    return text


def filesystem_of(path: Path, mountinfo: str | None = None) -> tuple[str, str]:
    """Return ``(mount point, file system type)`` of the mount that holds ``path``.

    Parameters
    ----------
    path
        A file or folder; need not exist.
    mountinfo
        The text of ``/proc/self/mountinfo``; read from the system when omitted.

    Returns
    -------
    tuple of str
        ``("", "")`` when the mount table cannot be read (not Linux).
    """
    if mountinfo is None:
        try:
            mountinfo = MOUNTINFO.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return "", ""
    # resolve() follows the symlinks of the parts that exist and keeps the rest as written.
    resolved = str(Path(os.path.abspath(path)).resolve())
    best_point, best_type = "", ""
    for line in mountinfo.splitlines():
        left, sep, right = line.partition(" - ")
        fields = left.split()
        if not sep or len(fields) < 5:
            continue
        point = _unescape_mount(fields[4])
        inside = resolved == point or resolved.startswith(point.rstrip("/") + "/")
        # The last matching mount of the longest mount point is the one in effect (over-mounts).
        if inside and len(point) >= len(best_point):
            best_point, best_type = point, right.split()[0] if right.split() else ""
    return best_point, best_type


def check_local_filesystem(path: Path, mountinfo: str | None = None) -> None:
    """Raise :class:`StudyError` if ``path`` is on a network file system.

    Parameters
    ----------
    path
        The SQLite database file (need not exist yet).
    mountinfo
        The mount table text (for tests); the system's when omitted.
    """
    point, fstype = filesystem_of(path, mountinfo)
    if fstype.lower() in NETWORK_FILESYSTEMS or fstype.lower().startswith(("nfs", "smb", "cifs")):
        raise StudyError(
            f"{path}: the study database is on a network file system ({fstype} mounted at "
            f"{point}); SQLite's write-ahead log and locking do not work there and the file can be "
            "corrupted. Copy the study to a local disk, or use `study pack` for a workstation, or "
            "a PostgreSQL server (--db postgresql+psycopg://...)"
        )


def _sqlite_connect_hooks(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, connection_record: Any) -> None:
        # Turn off pysqlite's own transaction handling; the "begin" hook emits BEGIN itself.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        mode = connection.get_execution_options().get("sqlite_begin", "IMMEDIATE")
        connection.exec_driver_sql(f"BEGIN {mode}")


def make_engine(db: str | Path, *, check_filesystem: bool = True) -> Engine:
    """Create an engine for a SQLite file path or a database URL.

    Parameters
    ----------
    db
        A path to a SQLite file, or a URL (``postgresql+psycopg://...``, ``sqlite:///...``).
    check_filesystem
        Refuse a SQLite file on a network file system (:func:`check_local_filesystem`).

    Returns
    -------
    Engine
        On SQLite every transaction starts with ``BEGIN IMMEDIATE``; use
        ``engine.execution_options(sqlite_begin="DEFERRED")`` for read-only work.
    """
    if is_url(db):
        url = str(db)
        if url.startswith("sqlite"):
            path_part = url.split(":///", 1)[1] if ":///" in url else ""
            if path_part and check_filesystem:
                check_local_filesystem(Path(path_part))
            engine = create_engine(url, connect_args={"timeout": BUSY_TIMEOUT_MS / 1000})
            _sqlite_connect_hooks(engine)
            return engine
        return create_engine(url, pool_pre_ping=True)
    path = Path(db)
    if check_filesystem:
        check_local_filesystem(path)
    engine = create_engine(f"sqlite:///{path}", connect_args={"timeout": BUSY_TIMEOUT_MS / 1000})
    _sqlite_connect_hooks(engine)
    return engine


def read_engine(engine: Engine) -> Engine:
    """Return a view of ``engine`` whose transactions do not take the SQLite write lock."""
    if engine.dialect.name == "sqlite":
        return engine.execution_options(sqlite_begin="DEFERRED")
    return engine
