"""``manage.py load_demo --if-empty`` on a database without the demo (test_demo.py shares one loaded demo
among its tests, so these need their own module)."""

from io import StringIO

from django.contrib.auth import get_user_model
from django.core.management import call_command

from leadrouter.demo.loader import DEMO_LOGINS
from territories.models import Account, Rep
from tests.factories import TeamFactory


def test_load_demo_if_empty_loads_an_empty_database_and_lists_the_logins(db):
    out = StringIO()
    # The lead history has its own tests (test_demo_history.py); this one is about the organisation.
    call_command("load_demo", "--if-empty", "--no-history", stdout=out)
    assert Account.objects.count() >= 300
    assert "Demo logins:" in out.getvalue()
    for login in DEMO_LOGINS:
        assert login.username in out.getvalue()


def test_load_demo_if_empty_skips_a_populated_database(db):
    TeamFactory(name="Field Sales")
    out = StringIO()
    call_command("load_demo", "--if-empty", stdout=out)
    assert "already has coverage data" in out.getvalue()
    assert not Rep.objects.exists()
    assert not Account.objects.exists()
    assert not get_user_model().objects.filter(username="revops").exists()
