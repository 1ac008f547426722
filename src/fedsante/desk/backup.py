"""Online backup and restore of a desk's data directory (docs/reliability.md, "Backups and restore").

``backup_desk`` takes a consistent snapshot while the desk runs: the SQLite database through SQLite's
online backup API (never a file copy of a live WAL database), then the audit chain (read under the
chain's shared lock, so after every change the snapshot holds; then verified), its ``audit-head.json``
if present, the signing keys, the TLS folder and the admin token, and a ``manifest.json`` with each
file's SHA-256, the database's Alembic revision and the chain's head. ``restore_desk`` checks the
digests, restores into a new folder and verifies the chain and the database before renaming it into place.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from fedsante import __version__
from fedsante.audit import verify_file
from fedsante.audit.log import read_lines
from fedsante.common.backup import (copy_private, copy_tree, fresh_folder, read_manifest, restore_into, write_manifest,
                                    write_private)
from fedsante.common.errors import ConfigError, DataError
from fedsante.desk.settings import DeskSettings

KIND = "desk"
DATABASE = "desk.db"
CHAIN = "audit.jsonl"
CHAIN_HEAD = "audit-head.json"  # the chain's anchored genesis, when the desk writes one
PG_DUMP_NOTE = ("The database is not a SQLite file: back it up with its own tool (PostgreSQL: pg_dump -Fc, "
                "restored with pg_restore), at the same time as this backup.")


def sqlite_path(settings: DeskSettings) -> Path | None:
    """The SQLite file of the desk's database, or ``None`` for a server database (PostgreSQL...)."""
    from sqlalchemy.engine import make_url

    url = make_url(settings.effective_database_url)
    if not url.drivername.startswith("sqlite"):
        return None
    if not url.database or url.database == ":memory:" or url.database.startswith("file:"):
        raise ConfigError(f"The desk database {settings.effective_database_url} is not a file; nothing to back up.")
    return Path(url.database)


def known_revisions() -> set[str]:
    """Every Alembic revision of this version's desk schema."""
    from alembic.script import ScriptDirectory

    from fedsante.desk.db import alembic_config

    return {script.revision for script in ScriptDirectory.from_config(alembic_config()).walk_revisions()}


def check_database(path: Path) -> str:
    """Open the SQLite file, run its integrity check; return its Alembic revision (``DataError`` if unusable)."""
    try:
        connection = sqlite3.connect(f"{Path(path).resolve().as_uri()}?mode=ro", uri=True)
        try:
            problems = [row[0] for row in connection.execute("PRAGMA integrity_check")]
            rows = connection.execute("SELECT version_num FROM alembic_version").fetchall()
        finally:
            connection.close()
    except sqlite3.Error as exc:
        raise DataError(f"Database {path} cannot be read ({exc}).") from None
    if problems != ["ok"]:
        raise DataError(f"Database {path} fails SQLite's integrity check: {'; '.join(problems[:3])}.")
    if len(rows) != 1:
        raise DataError(f"Database {path} has no single Alembic revision (alembic_version holds {len(rows)} rows).")
    revision = rows[0][0]
    if revision not in known_revisions():
        raise DataError(f"Database {path} is at schema revision {revision!r}, which this fedsante {__version__} "
                        "does not know: restore it with the version that made the backup (or a newer one).")
    return revision


def snapshot_sqlite(source: Path, dest: Path) -> None:
    """Copy a live SQLite database (WAL or not) page by page with SQLite's online backup API into ``dest``
    (new, mode 0600), as one self-contained file (rollback journal, no -wal to carry along)."""
    if not source.is_file():
        raise ConfigError(f"The desk database {source} does not exist: is {source.parent} a desk's data folder?")
    write_private(dest, b"")
    src = sqlite3.connect(source, timeout=30)  # read only by use; a WAL reader needs the -shm file writable
    try:
        dst = sqlite3.connect(dest)
        try:
            src.backup(dst)
            dst.execute("PRAGMA journal_mode=DELETE")
        finally:
            dst.close()
    except sqlite3.Error as exc:
        raise DataError(f"SQLite could not back up {source} ({exc}).") from None
    finally:
        src.close()


def copy_chain(source: Path, dest: Path) -> dict:
    """Copy an audit chain under its shared lock (with its ``audit-head.json``), verify the copy; its head."""
    head = source.with_name(CHAIN_HEAD)
    if head.is_file():
        copy_private(head, dest.with_name(CHAIN_HEAD))
    write_private(dest, b"".join(read_lines(source)))
    check = verify_file(dest)
    if not check.ok:
        raise DataError(f"The audit chain {source} does not verify, so it was not backed up as good: "
                        f"{check.summary()} Keep the file as evidence ('fedsante audit verify {source}').")
    return {"file": dest.name, "entries": check.entries, "head_seq": check.head_seq, "head_hash": check.head_hash}


def check_chain(path: Path, recorded: dict) -> None:
    """The restored chain verifies and ends at the head recorded in the manifest."""
    check = verify_file(path)
    if not check.ok:
        raise DataError(f"The restored audit chain {path.name} does not verify: {check.summary()}")
    if (check.head_seq, check.head_hash) != (recorded.get("head_seq"), recorded.get("head_hash")):
        raise DataError(f"The restored audit chain ends at entry {check.head_seq} ({check.head_hash[:16]}...), "
                        f"not at the head in the manifest (entry {recorded.get('head_seq')}).")


def backup_desk(settings: DeskSettings, out: Path) -> dict:
    """Snapshot the desk's data directory into the new folder ``out``; return the manifest.

    Safe while the desk runs. With a server database (PostgreSQL), everything but the database is backed
    up and the manifest says to use pg_dump (``PG_DUMP_NOTE``).
    """
    data_dir = Path(settings.data_dir)
    if not data_dir.is_dir():
        raise ConfigError(f"The desk data folder {data_dir} does not exist.")
    database = sqlite_path(settings)
    with fresh_folder(out, "Backup folder") as out:
        if database is not None:
            snapshot_sqlite(database, out / DATABASE)
            database_info = {"file": DATABASE, "alembic_revision": check_database(out / DATABASE)}
        else:
            database_info = {"file": None, "note": PG_DUMP_NOTE}
        # After the database: every change in the snapshot was audited before this copy of the chain.
        audit = copy_chain(settings.audit_path, out / CHAIN)
        for folder in ("keys", "tls"):
            if (data_dir / folder).is_dir():
                copy_tree(data_dir / folder, out / folder)
        if (data_dir / "admin-token").is_file():
            copy_private(data_dir / "admin-token", out / "admin-token")
        return write_manifest(out, KIND, {"fedsante_version": __version__, "database": database_info, "audit": audit})


def restore_desk(backup: Path, data_dir: Path) -> dict:
    """Check the backup's digests and restore it into the new folder ``data_dir``; return the manifest.

    The restored chain must verify with the recorded head, and the database must open, pass SQLite's
    integrity check and be at the recorded, known Alembic revision; otherwise nothing is left behind.
    """
    manifest = read_manifest(backup, KIND)
    database = manifest.get("database") or {}
    audit = manifest.get("audit") or {}
    if audit.get("file") != CHAIN or CHAIN not in manifest["files"]:
        raise DataError(f"The backup {backup} holds no audit chain.")

    def check(folder: Path) -> None:
        check_chain(folder / CHAIN, audit)
        if database.get("file"):
            revision = check_database(folder / DATABASE)
            if revision != database.get("alembic_revision"):
                raise DataError(f"The restored database is at revision {revision}, not "
                                f"{database.get('alembic_revision')} as recorded.")

    restore_into(backup, manifest, data_dir, check)
    return manifest
