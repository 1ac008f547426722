"""Backup folders shared by the desk and the nodes: private files, a manifest of SHA-256 digests, checks.

A backup is a folder holding copies of a data directory's files (each mode 0600, folders 0700) and a
``manifest.json`` listing every file with its SHA-256 and size, plus what the caller adds (database
revision, audit chain head...). A restore checks every digest first and names the first file that
does not match; it writes into a new folder, renamed into place only once the caller's checks pass.

Pure file handling: no database, web or terminal library (see the import-linter contracts).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath

from fedsante.common.errors import ConfigError, DataError

MANIFEST = "manifest.json"
FORMAT = "fedsante-backup/1"


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def new_folder(path: Path, what: str) -> Path:
    """Create ``path`` (mode 0700) or accept it empty; refuse a non-empty folder or a file."""
    path = Path(path)
    if path.exists():
        if not path.is_dir():
            raise ConfigError(f"{what} {path} is a file, not a folder.")
        if any(path.iterdir()):
            raise ConfigError(f"{what} {path} is not empty; give a new or empty folder (nothing was written).")
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    path.chmod(0o700)
    return path


@contextmanager
def fresh_folder(path: Path, what: str) -> Iterator[Path]:
    """``new_folder(path)``, emptied again (or removed, if it was made here) when the block fails."""
    existed = Path(path).exists()
    folder = new_folder(path, what)
    try:
        yield folder
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        if existed:
            folder.mkdir(mode=0o700, exist_ok=True)
        raise


def write_private(path: Path, data: bytes) -> None:
    """Write ``data`` to a new file ``path`` with mode 0600 (parents 0700), fsynced."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def copy_private(source: Path, dest: Path) -> None:
    """Copy one file byte for byte into a new file with mode 0600."""
    write_private(dest, Path(source).read_bytes())


def copy_tree(source: Path, dest: Path) -> list[Path]:
    """Copy the regular files under ``source`` (not hidden temporaries) to ``dest``; return the new files."""
    copied = []
    for path in sorted(Path(source).rglob("*")):
        relative = path.relative_to(source)
        if path.is_file() and not path.is_symlink() and not any(part.startswith(".") for part in relative.parts):
            copy_private(path, dest / relative)
            copied.append(dest / relative)
    return copied


def write_manifest(folder: Path, kind: str, details: dict) -> dict:
    """Record every file under ``folder`` (digest, size) with ``details``; write ``manifest.json`` (0600)."""
    files = {}
    for path in sorted(Path(folder).rglob("*")):
        if path.is_file() and path.name != MANIFEST:
            files[path.relative_to(folder).as_posix()] = {"sha256": file_sha256(path), "size": path.stat().st_size}
    manifest = {"format": FORMAT, "kind": kind, "created_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                **details, "files": files}
    write_private(Path(folder) / MANIFEST, (json.dumps(manifest, indent=2, ensure_ascii=False) + "\n").encode())
    return manifest


def _safe_name(name: str) -> bool:
    parts = PurePosixPath(name).parts
    return bool(parts) and not PurePosixPath(name).is_absolute() and ".." not in parts and name != MANIFEST


def read_manifest(backup: Path, kind: str) -> dict:
    """The backup's manifest, after checking that every listed file is there with its digest and size.

    Raises ``DataError`` naming the first file that is missing, altered or unexpected.
    """
    backup = Path(backup)
    try:
        manifest = json.loads((backup / MANIFEST).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"{backup} is not a fedsante backup: it has no {MANIFEST}.") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise DataError(f"{backup / MANIFEST} is unreadable ({exc}); the backup cannot be trusted.") from None
    files = manifest.get("files") if isinstance(manifest, dict) else None
    if not isinstance(files, dict) or manifest.get("format") != FORMAT:
        raise DataError(f"{backup / MANIFEST} is not a {FORMAT} manifest.")
    if manifest.get("kind") != kind:
        raise DataError(f"{backup} is a backup of a {manifest.get('kind')}, not of a {kind}.")
    for name, entry in manifest["files"].items():
        if not _safe_name(name) or not isinstance(entry, dict):
            raise DataError(f"{backup / MANIFEST} lists an invalid file name {name!r}.")
        path = backup / name
        if not path.is_file():
            raise DataError(f"Backup file {path} is missing; the backup is incomplete and was not restored.")
        if path.stat().st_size != entry.get("size") or file_sha256(path) != entry.get("sha256"):
            raise DataError(f"Backup file {path} does not match its SHA-256 in the manifest: it was changed or "
                            "damaged after the backup; nothing was restored.")
    listed = set(manifest["files"]) | {MANIFEST}
    for path in sorted(backup.rglob("*")):
        if path.is_file() and path.relative_to(backup).as_posix() not in listed:
            raise DataError(f"Backup file {path} is not in the manifest; nothing was restored.")
    return manifest


def restore_into(backup: Path, manifest: dict, target: Path, check: Callable[[Path], None],
                 skip: Iterable[str] = ()) -> None:
    """Copy the manifest's files (0600) into a hidden folder next to ``target``, run ``check`` on it,
    then rename it to ``target``. ``target`` must be new or empty; on any failure nothing is left."""
    target = Path(target)
    new_folder(target, "Restore target")
    staging = target.with_name(f".{target.name}.restoring-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(mode=0o700)
    skipped = set(skip)
    try:
        for name in manifest["files"]:
            if name not in skipped:
                copy_private(Path(backup) / name, staging / name)
                if file_sha256(staging / name) != manifest["files"][name]["sha256"]:
                    raise DataError(f"Backup file {Path(backup) / name} changed while it was restored; nothing "
                                    "was restored.")
        check(staging)
        target.rmdir()
        os.replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
