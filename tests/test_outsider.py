"""The outsider persona against every page and endpoint outside admin: 404, 403 or a redirect, never data.

The outsider is a rep of another team ("Field Sales"). The data belongs to the "Inside Sales" team: a lead of
its rep in a queue, an escalation, a deputy. Every URL pattern of the project (admin has its own tests) must be
listed here, so a new page cannot ship without its outsider case.
"""

import pytest
from django.urls import URLResolver, get_resolver, reverse
from django.utils import timezone

from leadrouter.coverage.versions import draft_create
from routing.models import Lead, Notification
from sla.models import Escalation
from territories.models import CoverageDraft, CoverageRevision, ReplayRun
from tests.factories import AssignmentFactory, LeadFactory, QueueFactory, QueueMembershipFactory, UserFactory

pytestmark = pytest.mark.django_db

SECRET = "Inside Sales Secret GmbH"
REFUSED = {302, 401, 403, 404}


@pytest.fixture
def inside(rep, manager):
    queue = QueueFactory(name="Inside Inbound")
    QueueMembershipFactory(queue=queue, rep=rep)
    lead = LeadFactory(status=Lead.Status.ASSIGNED, owner=rep, queue=queue, company=SECRET)
    assignment = AssignmentFactory(lead=lead, rep=rep, queue=queue)
    escalation = Escalation.objects.create(
        lead=lead, action="alert_manager", reason="Breached", fired_at=timezone.now()
    )
    # A Slack notice whose delivery is unknown: the health page offers to resend it.
    notification = Notification.objects.create(
        assignment=assignment, lead=lead, rep=rep, kind=Notification.Kind.SLACK, status=Notification.Status.UNKNOWN
    )
    # A replay whose report names the lead's company: only RevOps may read it.
    replay_run = ReplayRun.objects.create(label="draft Inside", report={"leads": 1, "changed": [], "note": SECRET})
    return {
        "replay_run": replay_run,
        "queue": queue,
        "lead": lead,
        "escalation": escalation,
        "notification": notification,
        "rep": rep,
        "manager": manager,
    }


# name → (method, arguments from the fixture, what the outsider may get). "own" pages answer 200 with the
# outsider's own (empty) view; they must not show the other team's data.
CASES = {
    "escalations": ("get", lambda d: [], "own"),
    "escalation-acknowledge": ("post", lambda d: [d["escalation"].pk], REFUSED),
    "escalation-resolve": ("post", lambda d: [d["escalation"].pk], REFUSED),
    "escalations-bulk": ("post", lambda d: [], REFUSED),
    "my-leads": ("get", lambda d: [], "own"),
    "take-next": ("post", lambda d: [d["queue"].pk], REFUSED),
    "lead-page": ("get", lambda d: [d["lead"].pk], REFUSED),
    "lead-accept": ("post", lambda d: [d["lead"].pk], REFUSED),
    "lead-touch": ("post", lambda d: [d["lead"].pk], REFUSED),
    "lead-disqualify": ("post", lambda d: [d["lead"].pk], REFUSED),
    "lead-nurture": ("post", lambda d: [d["lead"].pk], REFUSED),
    "lead-not-mine": ("post", lambda d: [d["lead"].pk], REFUSED),
    "lead-convert": ("post", lambda d: [d["lead"].pk], REFUSED),
    "lead-reopen": ("post", lambda d: [d["lead"].pk], REFUSED),
    "routing-health": ("get", lambda d: [], REFUSED),
    "notification-resend": ("post", lambda d: [d["notification"].pk], REFUSED),
    "reports": ("get", lambda d: [], REFUSED),
    "report-csv": ("get", lambda d: ["conversion"], REFUSED),
    "team-board": ("get", lambda d: [], REFUSED),
    "team-reassign": ("post", lambda d: [], REFUSED),
    "rep-out-of-office": ("post", lambda d: [d["rep"].pk], REFUSED),
    "rep-departure": ("get", lambda d: [d["rep"].pk], REFUSED),
    "queue-deputy-add": ("post", lambda d: [d["queue"].pk], REFUSED),
    "queue-deputy-remove": ("post", lambda d: [d["queue"].pk, d["manager"].pk], REFUSED),
    "lead-intake": ("post", lambda d: [], REFUSED),
    "lead-detail": ("get", lambda d: [d["lead"].pk], REFUSED),
    "lead-touches": ("post", lambda d: [d["lead"].pk], REFUSED),
    "routing-simulate": ("post", lambda d: [], REFUSED),
    "replay": ("get", lambda d: [], REFUSED),
    "replay-result": ("get", lambda d: [d["replay_run"].pk], REFUSED),
    "replay-csv": ("get", lambda d: [d["replay_run"].pk], REFUSED),
    "api-replay": ("post", lambda d: [], REFUSED),
    "lead-status": ("post", lambda d: [d["lead"].pk], REFUSED),
    # Public by design (a website's form posts there), but a token that names no form source takes nothing.
    "form-post": ("post", lambda d: ["lf_no-such-form"], REFUSED),
}
# Public on purpose: they hold no data of anyone.
PUBLIC = {"healthz", "login", "logout", "api-schema", "api-docs", None}


def project_url_names():
    def walk(patterns):
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                if "admin" not in str(pattern.pattern):
                    yield from walk(pattern.url_patterns)
            else:
                yield pattern.name

    return set(walk(get_resolver().url_patterns))


def test_every_page_and_endpoint_has_an_outsider_case():
    assert project_url_names() - PUBLIC == set(CASES)


@pytest.mark.parametrize("name", sorted(CASES))
def test_the_outsider_gets_nothing(client, outsider, inside, name):
    method, arguments, allowed = CASES[name]
    client.force_login(outsider.user)
    url = reverse(name, args=arguments(inside))

    response = client.get(url) if method == "get" else client.post(url, {"kind": "call", "reason": "x"})

    body = response.content.decode(errors="replace")
    assert SECRET not in body
    if allowed == "own":
        assert response.status_code == 200
    else:
        assert response.status_code in allowed
    # Nothing changed hands.
    lead = Lead.objects.get(pk=inside["lead"].pk)
    assert (lead.owner, lead.status) == (inside["rep"], Lead.Status.ASSIGNED)
    assert Escalation.objects.get(pk=inside["escalation"].pk).status == "open"
    assert Notification.objects.get(pk=inside["notification"].pk).status == Notification.Status.UNKNOWN


def test_the_outsider_lists_no_other_teams_lead_and_closes_none_through_the_api(client, outsider, inside):
    client.force_login(outsider.user)

    listed = client.get("/api/v1/leads/", {"status": "assigned"})
    closed = client.post(
        f"/api/v1/leads/{inside['lead'].pk}/status/", {"status": "converted"}, content_type="application/json"
    )

    assert listed.status_code == 200
    assert listed.json()["results"] == []
    assert SECRET not in listed.content.decode()
    assert closed.status_code == 404
    assert Lead.objects.get(pk=inside["lead"].pk).status == Lead.Status.ASSIGNED


# --- Coverage versions and drafts in admin: RevOps only ------------------------------------------------------------


@pytest.fixture
def coverage_history(rep):
    """A version and a draft, and a staff user holding no model permission (a regional RevOps user)."""
    draft = draft_create("Next quarter")
    return {"draft": draft, "version": draft.base, "staff": UserFactory(username="regional", is_staff=True)}


COVERAGE_ADMIN_PAGES = [
    ("get", "admin:territories_coveragerevision_changelist", lambda d: []),
    ("get", "admin:territories_coveragerevision_change", lambda d: [d["version"].pk]),
    ("get", "admin:territories_coveragerevision_compare", lambda d: []),
    ("get", "admin:territories_coveragerevision_rollback", lambda d: [d["version"].number]),
    ("post", "admin:territories_coveragerevision_rollback", lambda d: [d["version"].number]),
    ("get", "admin:territories_coveragedraft_changelist", lambda d: []),
    ("get", "admin:territories_coveragedraft_add", lambda d: []),
    ("get", "admin:territories_coveragedraft_change", lambda d: [d["draft"].pk]),
    ("post", "admin:territories_coveragedraft_change", lambda d: [d["draft"].pk]),
    ("get", "admin:territories_coveragedraft_publish", lambda d: [d["draft"].pk]),
    ("post", "admin:territories_coveragedraft_publish", lambda d: [d["draft"].pk]),
]


@pytest.mark.parametrize("who", ["outsider", "rep", "manager", "staff"])
@pytest.mark.parametrize(
    ("method", "name", "arguments"),
    COVERAGE_ADMIN_PAGES,
    # Named by method and page only: a function's repr differs between processes, and xdist's workers must
    # collect the same ids.
    ids=[f"{method}-{name.removeprefix('admin:territories_')}" for method, name, _ in COVERAGE_ADMIN_PAGES],
)
def test_only_revops_reach_coverage_versions_and_drafts(
    client, outsider, rep, manager, coverage_history, who, method, name, arguments
):
    user = {"outsider": outsider.user, "rep": rep.user, "manager": manager, "staff": coverage_history["staff"]}[who]
    client.force_login(user)
    url = reverse(name, args=arguments(coverage_history))

    response = client.get(url) if method == "get" else client.post(url, {"name": "Mine", "text": "version: 1\n"})

    assert response.status_code in REFUSED
    assert "Next quarter" not in response.content.decode(errors="replace")
    # Nothing was published, rolled back or rewritten.
    assert CoverageRevision.objects.count() == 1
    draft = CoverageDraft.objects.get()
    assert (draft.name, draft.published) == ("Next quarter", None)
