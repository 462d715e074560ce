"""Shared fixtures: the four personas every page and endpoint is tested with.

- ``revops``: maintains the coverage model in admin (staff, RevOps group).
- ``manager``: manages the "Inside Sales" team.
- ``rep``: a seller in that team.
- ``outsider``: a seller in another team, who must see nothing of the first.
"""

import pytest
from django.db import connection

from territories.roles import ensure_role_groups
from tests.factories import PASSWORD, RepFactory, TeamFactory, UserFactory
from tests.helpers import FAST_HASHERS

__all__ = ["PASSWORD"]


# Modules whose tests take seconds each (real workers, browsers, the benchmark's smoke run, the demo's
# month of history), longest first. They run before the other tests of their group (below): with two test
# processes (``make test`` runs ``-n 2``), a 40-second test that came late kept one process busy while the
# other sat idle at the end of the run; started early, the quick tests fill in around it.
SLOW_FIRST = (
    "tests/test_bench_routing.py",
    "tests/test_webhooks_worker.py",
    "tests/test_worker.py",
    "tests/test_worker_crash_notify.py",
    "tests/territories/test_demo_history.py",
    "tests/territories/test_demo_escalations.py",
    "tests/e2e/",
)


def _slow_rank(item) -> int:
    path = item.nodeid.split("::", 1)[0]
    return next((rank for rank, prefix in enumerate(SLOW_FIRST) if path.startswith(prefix)), len(SLOW_FIRST))


@pytest.hookimpl(tryfirst=True)  # Before pytest-django's stable sort, which puts transactional tests last.
def pytest_collection_modifyitems(config, items):
    """Tests marked ``postgres`` run only when DATABASE_URL points at PostgreSQL;
    tests marked ``sqlite`` only when it does not.

    They are deselected (and counted in the summary) rather than skipped, so a
    skip never hides a failure: on their own database they always run.

    The slow modules (``SLOW_FIRST``) go first, each module's tests still together and in their order; then
    pytest-django moves the tests that empty the database at their end (``transaction=True``, live servers,
    workers) after the others, as Django's runner does, keeping this order within each group: a test that
    needs the rows the migrations made (the catch-all queue) never runs after one that emptied them.
    """
    from django.conf import settings

    on_postgres = settings.DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql"
    other_database = "sqlite" if on_postgres else "postgres"
    selected, deselected = [], []
    for item in items:
        (deselected if item.get_closest_marker(other_database) else selected).append(item)
    if deselected:
        config.hook.pytest_deselected(items=deselected)
    items[:] = sorted(selected, key=_slow_rank)


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    settings.PASSWORD_HASHERS = FAST_HASHERS


@pytest.fixture(autouse=True)
def fresh_rate_limit_counters(settings, request):
    # API throttles count in the default cache, which is a file cache shared by every test process; each test
    # starts with its own empty in-memory cache so one test's requests never count against another's.
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": request.node.nodeid}
    }


@pytest.fixture
def team(db):
    return TeamFactory(name="Inside Sales")


@pytest.fixture
def other_team(db):
    return TeamFactory(name="Field Sales")


@pytest.fixture
def revops(db):
    user = UserFactory(username="revops", is_staff=True)
    user.groups.add(ensure_role_groups())
    return user


@pytest.fixture
def manager(team):
    user = UserFactory(username="manager")
    team.managers.add(user)
    return user


@pytest.fixture
def rep(team, manager):
    return RepFactory(user=UserFactory(username="rep"), team=team, manager=manager)


@pytest.fixture
def outsider(other_team):
    return RepFactory(user=UserFactory(username="outsider"), team=other_team)


@pytest.fixture
def on_postgres() -> bool:
    return connection.vendor == "postgresql"
