"""The desk schema comes from Alembic migrations, and the migrations match the models."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from fedsante.desk.db import Base, make_engine, make_sessionmaker, migrate


def test_migrations_build_exactly_the_schema_of_the_models(tmp_path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'desk.db'}")
    migrate(engine)
    with engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert diff == [], "models changed without a migration; add one under desk/migrations/versions"
    tables = set(inspect(engine).get_table_names())
    assert set(Base.metadata.tables) | {"alembic_version"} == tables


def test_migrating_twice_is_harmless_and_keeps_the_data(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'desk.db'}"
    from fedsante.desk.db import Organisation

    with make_sessionmaker(url)() as session:
        session.add(Organisation(name="CHU", kind="hospital"))
        session.commit()
    with make_sessionmaker(url)() as session:
        assert [o.name for o in session.query(Organisation)] == ["CHU"]


def test_migration_0007_blanks_review_comments_copied_into_the_public_history(tmp_path) -> None:
    """Before 0007 a reject or changes-requested copied the reviewer's comment into the project's history."""
    from alembic import command
    from sqlalchemy import text

    from fedsante.desk.db import alembic_config

    engine = make_engine(f"sqlite:///{tmp_path / 'desk.db'}")
    with engine.begin() as connection:
        command.upgrade(alembic_config(connection), "0005")
        connection.execute(text("INSERT INTO organisations (id, name, kind, created_at) VALUES (1, 'o', 'x', '2026-01-01')"))
        connection.execute(text("INSERT INTO accounts (id, name, organisation_id, role, end_date, token_sha256, "
                                "created_at) VALUES (1, 'r', 1, 'reviewer', '2027-01-01', 'h', '2026-01-01')"))
        connection.execute(text("INSERT INTO projects (id, reference, organisation_id, owner_id, status, version, spec, "
                                "created_at, updated_at) VALUES (1, 'P', 1, 1, 'rejected', 1, '{}', '2026-01-01', "
                                "'2026-01-01')"))
        connection.execute(text("INSERT INTO reviews (project_id, project_version, reviewer_id, decision, comment, "
                                "answers, created_at) VALUES (1, 1, 1, 'reject', 'private words', '{}', '2026-01-01')"))
        for to, reason in (("submitted", "please review"), ("rejected", "private words")):
            connection.execute(text("INSERT INTO project_events (project_id, time, actor, from_status, to_status, "
                                    "reason) VALUES (1, '2026-01-01', 'r', NULL, :to, :reason)"),
                               {"to": to, "reason": reason})
    migrate(engine)
    with engine.connect() as connection:
        reasons = dict(connection.execute(text("SELECT to_status, reason FROM project_events")).all())
        public = connection.execute(text("SELECT public_reason FROM reviews")).scalar_one()
    assert reasons == {"submitted": "please review", "rejected": ""} and public == ""
