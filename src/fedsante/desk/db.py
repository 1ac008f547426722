"""The desk's database schema (SQLAlchemy 2.0). SQLite by default; any SQLAlchemy URL works."""

from __future__ import annotations

import os
from datetime import UTC, date, datetime
from pathlib import Path

from sqlalchemy import JSON, ForeignKey, String, Text, UniqueConstraint, create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.pool import StaticPool
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, sessionmaker


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    pass


class Organisation(Base):
    __tablename__ = "organisations"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    kind: Mapped[str] = mapped_column(String(40))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Account(Base):
    """A named person or service with one role, an organisation and a mandatory end date."""

    __tablename__ = "accounts"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120), unique=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"))
    role: Mapped[str] = mapped_column(String(20))
    end_date: Mapped[date]
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    disabled_at: Mapped[datetime | None] = mapped_column(default=None)


class Node(Base):
    __tablename__ = "nodes"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"))
    public_key: Mapped[str] = mapped_column(String(64))
    hospital_name: Mapped[str] = mapped_column(String(200), default="")
    territory: Mapped[str] = mapped_column(String(200), default="")
    audit_seq: Mapped[int | None] = mapped_column(default=None)
    audit_head: Mapped[str | None] = mapped_column(String(64), default=None)
    audit_reported_at: Mapped[datetime | None] = mapped_column(default=None)
    privacy_spent: Mapped[dict | None] = mapped_column(JSON, default=None)  # the node's ledger totals, as reported
    objection_key: Mapped[str | None] = mapped_column(String(64), default=None)  # X25519, base64, signed by the node
    datasets: Mapped[list | None] = mapped_column(JSON, default=None)  # names of the datasets the node offers
    catalogue: Mapped[list | None] = mapped_column(JSON, default=None)  # their columns and types (no value, no count)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Project(Base):
    """A project's registry record (``spec``, see desk/registry.py) and where it is in its life."""

    __tablename__ = "projects"
    id: Mapped[int] = mapped_column(primary_key=True)
    reference: Mapped[str] = mapped_column(String(40), unique=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"))
    owner_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    status: Mapped[str] = mapped_column(String(30), default="draft")
    version: Mapped[int] = mapped_column(default=1)
    spec: Mapped[dict] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class ProjectEvent(Base):
    """One transition of a project's status: who, when, why."""

    __tablename__ = "project_events"
    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"))
    time: Mapped[datetime] = mapped_column(default=utcnow)
    actor: Mapped[str] = mapped_column(String(120))
    from_status: Mapped[str | None] = mapped_column(String(30))
    to_status: Mapped[str] = mapped_column(String(30))
    reason: Mapped[str] = mapped_column(Text, default="")


class Review(Base):
    """A reviewer's decision and comment on one version of a project (every review is kept)."""

    __tablename__ = "reviews"
    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"))
    project_version: Mapped[int]
    reviewer_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    decision: Mapped[str] = mapped_column(String(30))
    comment: Mapped[str] = mapped_column(Text, default="")  # for the applicant and the desk only, never public
    public_reason: Mapped[str] = mapped_column(Text, default="", server_default="")  # published with the decision
    answers: Mapped[dict] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Approval(Base):
    """A signed approval document (canonical JSON) and its signature by a desk key."""

    __tablename__ = "approvals"
    id: Mapped[str] = mapped_column(String(60), primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"))
    document: Mapped[dict] = mapped_column(JSON)
    signature: Mapped[str] = mapped_column(String(128))
    sha256: Mapped[str] = mapped_column(String(64))
    expires_at: Mapped[datetime]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Acceptance(Base):
    """A node's signed decision (accepted / declined) on an approval."""

    __tablename__ = "acceptances"
    __table_args__ = (UniqueConstraint("approval_id", "node_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    approval_id: Mapped[str] = mapped_column(ForeignKey("approvals.id"))
    node_id: Mapped[str] = mapped_column(ForeignKey("nodes.id"))
    decision: Mapped[str] = mapped_column(String(20))
    reason: Mapped[str] = mapped_column(Text, default="")
    signature: Mapped[str] = mapped_column(String(128))
    decided_at: Mapped[datetime] = mapped_column(default=utcnow)


class Run(Base):
    __tablename__ = "runs"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"))
    approval_id: Mapped[str | None] = mapped_column(ForeignKey("approvals.id"), default=None)
    started_by: Mapped[str] = mapped_column(String(120), default="")
    status: Mapped[str] = mapped_column(String(20), default="running")
    algorithm_id: Mapped[str] = mapped_column(String(64))
    algorithm_version: Mapped[str] = mapped_column(String(32))
    code_hash: Mapped[str] = mapped_column(String(64))
    params: Mapped[dict] = mapped_column(JSON)
    nodes: Mapped[list] = mapped_column(JSON)
    rounds: Mapped[int]
    current_round: Mapped[int] = mapped_column(default=0)
    error: Mapped[str | None] = mapped_column(default=None)
    result: Mapped[dict | None] = mapped_column(JSON, default=None)
    privacy: Mapped[dict | None] = mapped_column(JSON, default=None)  # planned releases and epsilon per node
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)
    released_at: Mapped[datetime | None] = mapped_column(default=None)


class RunRelease(Base):
    """A reviewer's release of a run's outputs, after looking at the automatic checks."""

    __tablename__ = "run_releases"
    __table_args__ = (UniqueConstraint("run_id", "reviewer_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id"))
    reviewer_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    comment: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class TaskRecord(Base):
    """One task sent to one node, and what came back (hash and signature, never the arrays)."""

    __tablename__ = "tasks"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id"))
    node_id: Mapped[str] = mapped_column(ForeignKey("nodes.id"))
    round: Mapped[int]
    kind: Mapped[str] = mapped_column(String(20))
    ok: Mapped[bool]
    error: Mapped[str | None] = mapped_column(default=None)
    rejected: Mapped[str | None] = mapped_column(default=None)
    result_sha256: Mapped[str] = mapped_column(String(64))
    signature: Mapped[str] = mapped_column(String(128))
    completed_at: Mapped[datetime] = mapped_column(default=utcnow)


class Objection(Base):
    """A patient's objection: the identifier sealed to the hospital's key (dropped once applied), never in clear.

    ``id`` is the SHA-256 of the receipt code the patient holds; the code itself is not stored.
    Status: received -> applied -> withdrawal_requested -> withdrawn (or received -> withdrawn).
    """

    __tablename__ = "objections"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    node_id: Mapped[str] = mapped_column(ForeignKey("nodes.id"))
    ciphertext: Mapped[str | None] = mapped_column(Text, default=None)
    status: Mapped[str] = mapped_column(String(24), default="received")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    applied_at: Mapped[datetime | None] = mapped_column(default=None)
    withdrawn_at: Mapped[datetime | None] = mapped_column(default=None)



class RateCounter(Base):
    """How many actions one key (a kind and a hashed client address or a node id) took in the current window.

    Shared by every desk worker, unlike a counter in memory; one row per key, reset when a new window starts.
    """

    __tablename__ = "rate_limits"
    key: Mapped[str] = mapped_column(String(100), primary_key=True)
    window_start: Mapped[int]
    count: Mapped[int]

MIGRATIONS = Path(__file__).with_name("migrations")


def alembic_config(connection=None):
    """Alembic's configuration for the desk schema (migrations live in fedsante/desk/migrations)."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def migrate(engine: Engine) -> None:
    """Bring the database schema to the latest revision (creates it on an empty database)."""
    from alembic import command

    with engine.begin() as connection:
        command.upgrade(alembic_config(connection), "head")


def private_sqlite_files(path: Path) -> None:
    """Make the SQLite database and its -wal/-shm files readable by the desk's user only (0600).

    The database is created empty with mode 0600 if absent (SQLite gives its -wal and -shm files the
    mode of the database); files an earlier version left 0644 are narrowed.
    """
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
    for file in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        try:
            if file.stat().st_mode & 0o077:
                file.chmod(0o600)
        except FileNotFoundError:
            pass


def make_engine(url: str) -> Engine:
    if not url.startswith("sqlite"):
        return create_engine(url)
    in_memory = url in ("sqlite://", "sqlite:///:memory:")
    engine = create_engine(url, connect_args={"check_same_thread": False}, poolclass=StaticPool if in_memory else None)
    if not in_memory:
        database = engine.url.database
        if database and not database.startswith("file:"):
            private_sqlite_files(Path(database))

        @event.listens_for(engine, "connect")
        def _wal(connection, _record) -> None:  # readers never block the writer; commits without a full sync
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=NORMAL")
            connection.execute("PRAGMA busy_timeout=10000")
            if database and not database.startswith("file:"):
                private_sqlite_files(Path(database))  # the -wal and -shm files exist from here
    return engine


def make_sessionmaker(url: str) -> sessionmaker:
    """Migrate the schema to the latest revision and return a session factory."""
    engine = make_engine(url)
    migrate(engine)
    return sessionmaker(engine, expire_on_commit=False)
