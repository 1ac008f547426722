"""Alembic environment of the desk database; run by fedsante.desk.db.migrate (and by `alembic`)."""

from alembic import context
from sqlalchemy import create_engine

from fedsante.desk.db import Base

config = context.config
connection = config.attributes.get("connection")


def run(conn) -> None:
    context.configure(connection=conn, target_metadata=Base.metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


if connection is not None:
    run(connection)
else:  # the alembic command line, with sqlalchemy.url set in its config
    with create_engine(config.get_main_option("sqlalchemy.url")).connect() as conn:
        run(conn)
