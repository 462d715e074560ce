"""What the benchmark commands share: a scratch PostgreSQL database next to the configured one."""

import contextlib
from collections.abc import Iterator

import psycopg
from django.conf import settings
from django.core.management.base import OutputWrapper
from django.db import connection


@contextlib.contextmanager
def scratch_database(name: str, *, keep: bool, stdout: OutputWrapper) -> Iterator[None]:
    """Create database ``name`` (dropping an old one), point Django's default connection at it for the
    block, then drop it unless ``keep``. The caller migrates and fills it."""
    db = settings.DATABASES["default"]
    admin = psycopg.connect(
        dbname="postgres",
        user=db["USER"] or None,
        password=db["PASSWORD"] or None,
        host=db["HOST"] or None,
        port=db["PORT"] or None,
        autocommit=True,
    )
    with admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{name}"')
        original = db["NAME"]
        connection.close()
        db["NAME"] = name
        try:
            yield
        finally:
            connection.close()
            db["NAME"] = original
            if keep:
                stdout.write(f"Kept database {name}.")
            else:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
