"""The admin home RevOps start from: the pages they work in are one click away, the system tables sit last."""

import pytest
from django.urls import reverse

pytestmark = pytest.mark.django_db


def test_revops_find_team_escalations_health_reports_and_simulate_on_the_admin_home(client, revops):
    client.force_login(revops)

    html = client.get(reverse("admin:index")).content.decode()

    for name in ("team-board", "escalations", "routing-health", "reports", "admin:routing_rule_simulate"):
        assert f'href="{reverse(name)}"' in html, name


def test_the_beat_schedule_tables_sit_under_system_below_the_coverage_model(client, admin_user):
    client.force_login(admin_user)

    html = client.get(reverse("admin:index")).content.decode()

    system = html.index('id="system"')
    assert html.index("Coverage: teams, reps, territories, accounts") < system
    assert html.index("SLAs and escalations") < system
    assert system < html.index(reverse("admin:django_celery_beat_periodictask_changelist"))


def test_staff_who_manage_nothing_get_no_links_to_pages_they_cannot_open(client, django_user_model):
    staff = django_user_model.objects.create_user(username="clerk", password="x", is_staff=True)
    client.force_login(staff)

    html = client.get(reverse("admin:index")).content.decode()

    assert reverse("reports") not in html
