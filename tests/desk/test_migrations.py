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
