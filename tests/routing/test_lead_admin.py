"""The leads admin: CSV upload with its report page, and each lead's receipt rendered for people."""

import datetime as dt

import pytest
import time_machine
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from routing.models import Lead, LeadImport, Rule
from routing.selectors import lead_simulate
from tests.factories import (
    LeadFactory,
    OutOfOfficeFactory,
    QueueFactory,
    QueueMembershipFactory,
    RepFactory,
    TerritoryCriterionFactory,
    TerritoryFactory,
    UserFactory,
)
from tests.helpers import admin_url

pytestmark = pytest.mark.django_db

MONDAY = dt.datetime(2026, 11, 23, 10, 0, tzinfo=dt.UTC)
IMPORT_URL = "admin:routing_lead_import"

GOOD = "email,company,country,external_id,source\na@one.example,One,DE,1,fair\nb@two.example,Two,AT,2,fair\n"
BAD = "email,company,country\na@one.example,One,DE\nnope,Two,AT\nc@three.example,Three,Atlantis\n"


def upload(client, text: str, **data):
    return client.post(
        reverse(IMPORT_URL), {"file": SimpleUploadedFile("leads.csv", text.encode(), "text/csv"), **data}, follow=True
    )


def test_revops_find_the_import_button_on_the_lead_list(client, revops):
    client.force_login(revops)

    page = client.get(admin_url(Lead, "changelist")).content.decode()

    assert reverse(IMPORT_URL) in page
    assert "Import leads from CSV" in page


def test_revops_upload_a_csv_and_land_on_its_report_with_routing_progress(client, revops):
    client.force_login(revops)
    assert client.get(reverse(IMPORT_URL)).status_code == 200

    response = upload(client, GOOD)

    lead_import = LeadImport.objects.get()
    assert response.redirect_chain[-1][0] == admin_url(lead_import, "change", lead_import.pk)
    assert (lead_import.imported, lead_import.created_by) == (2, revops)
    page = response.content.decode()
    assert '<progress id="routing-progress" value="0" max="2">' in page
    assert "0 of 2 routed, 2 waiting" in page
    # While leads wait for routing the page refreshes itself; once they are routed it stops.
    assert '<meta http-equiv="refresh" content="2">' in page
    # The report links to the import's leads.
    LeadFactory()
    leads = client.get(response.context["leads_url"]).context["cl"].result_list
    assert {lead.lead_import_id for lead in leads} == {lead_import.pk} and len(leads) == 2
    Lead.objects.update(status=Lead.Status.ASSIGNED)
    page = client.get(admin_url(lead_import, "change", lead_import.pk)).content.decode()
    assert '<progress id="routing-progress" value="2" max="2">' in page
    assert 'http-equiv="refresh"' not in page


def test_a_bad_file_shows_the_report_with_row_numbers_and_stores_nothing(client, revops):
    client.force_login(revops)

    page = upload(client, BAD).content.decode()

    assert not Lead.objects.exists()
    assert "Nothing was stored" in page
    assert "<tr><td>3</td><td>email: Enter a valid e-mail address.</td></tr>" in page
    assert "<tr><td>4</td><td>country: Unknown country" in page


def test_skip_invalid_in_admin_stores_the_good_rows(client, revops):
    client.force_login(revops)

    page = upload(client, BAD, skip_invalid="on").content.decode()

    assert Lead.objects.count() == 1
    assert "<tr><td>3</td>" in page
    assert '<progress id="routing-progress" value="0" max="1">' in page


def test_a_file_that_cannot_be_imported_is_explained_on_the_form(client, revops):
    client.force_login(revops)

    response = upload(client, "colour,size\nred,L\n")

    assert response.redirect_chain == []
    assert "No column is a lead field" in response.content.decode()
    assert not LeadImport.objects.exists()


def test_past_imports_are_listed_read_only(client, revops):
    client.force_login(revops)
    upload(client, GOOD)

    page = client.get(admin_url(LeadImport, "changelist")).content.decode()

    assert "leads.csv" in page
    assert client.get(admin_url(LeadImport, "add")).status_code == 403


def test_outsiders_and_staff_without_the_permission_cannot_import(client, outsider):
    client.force_login(outsider.user)
    assert client.get(reverse(IMPORT_URL)).status_code == 302
    assert upload(client, GOOD).redirect_chain[0][0].startswith(reverse("admin:login"))

    # Staff who may look at leads but not add them are refused outright.
    viewer = UserFactory(username="viewer", is_staff=True)
    viewer.user_permissions.add(*_permissions("view_lead"))
    client.force_login(viewer)
    assert client.get(reverse(IMPORT_URL)).status_code == 403
    assert reverse(IMPORT_URL) not in client.get(admin_url(Lead, "changelist")).content.decode()
    assert not Lead.objects.exists()


def _permissions(*codenames):
    from django.contrib.auth.models import Permission

    return Permission.objects.filter(content_type__app_label="routing", codename__in=codenames)


# --- The receipt ------------------------------------------------------------------------------------------


@pytest.fixture
def routed_with_receipt():
    """A lead routed through DACH Inbound: anna is out of office, so ben wins; a rule before it did not match."""
    queue = QueueFactory(name="DACH Inbound")
    anna = RepFactory(user=UserFactory(username="anna"), time_zone="UTC")
    ben = RepFactory(user=UserFactory(username="ben"), time_zone="UTC")
    QueueMembershipFactory(queue=queue, rep=anna, position=1)
    QueueMembershipFactory(queue=queue, rep=ben, position=2)
    OutOfOfficeFactory(rep=anna, starts_at=MONDAY - dt.timedelta(days=1))
    TerritoryCriterionFactory(territory=TerritoryFactory(name="DACH", queue=queue), kind="country", value="DE")
    Rule.objects.create(
        name="Partners to nurture",
        position=5,
        action=Rule.Action.NURTURE,
        condition={"all": [{"field": "source", "op": "equals", "value": "partner"}]},
    )
    Rule.objects.create(name="By territory", position=10, action=Rule.Action.TERRITORY)
    with time_machine.travel(MONDAY, tick=False):
        evaluation = lead_simulate(raw={"email": "max@prospect.de", "country": "DE", "source": "webinar"})
    return LeadFactory(
        status=Lead.Status.ASSIGNED, owner=ben, queue=queue, receipt={**evaluation.receipt(), "elapsed_ms": 12}
    )


def test_the_lead_page_explains_why_the_lead_went_where_it_went(client, revops, routed_with_receipt):
    client.force_login(revops)

    page = client.get(admin_url(routed_with_receipt, "change", routed_with_receipt.pk)).content.decode()

    assert "Why this lead went here" in page
    assert "Assigned to ben in DACH Inbound by rule &#x27;By territory&#x27;." in page
    # The rules in order, each with its result and why.
    rules = page[page.index('class="receipt-rules"') :]
    assert rules.index("Partners to nurture") < rules.index("By territory")
    assert "not matched" in rules
    assert "source is" in rules  # the reason the first rule did not hold
    assert '<td class="matched">matched</td>' in rules
    # Every candidate with the reason they were skipped, and the winner.
    assert "out of office" in page
    assert '<td class="chosen">chosen</td>' in page
    assert 'Winner: <strong class="chosen">ben</strong>' in page
    assert "Chosen: <strong>DACH</strong>" in page
    assert "Decided in 12 ms" in page
    assert "<details><summary>Raw receipt (JSON)</summary>" in page


def test_a_lead_not_yet_routed_says_so(client, revops):
    lead = LeadFactory()
    client.force_login(revops)

    page = client.get(admin_url(lead, "change", lead.pk)).content.decode()

    assert "No receipt yet" in page


def test_lead_list_filters_by_routing_error_and_enrichment_failures(client, revops):
    failed = LeadFactory(routing_error="boom")
    enriched_badly = LeadFactory(enrichment_failures={"clearbit": "timeout"})
    fine = LeadFactory()
    client.force_login(revops)
    url = admin_url(Lead, "changelist")

    def listed(**params):
        return set(client.get(url, params).context["cl"].result_list)

    assert listed(routing_error="yes") == {failed}
    assert listed(routing_error="no") == {enriched_badly, fine}
    assert listed(enrichment_failed="yes") == {enriched_badly}
    assert listed(enrichment_failed="no") == {failed, fine}
    assert listed(account_match_weak__exact="1") == set()


def test_reps_are_sent_to_login_from_the_import_pages(client, rep):
    lead_import = LeadImport.objects.create(file_name="leads.csv")
    client.force_login(rep.user)

    for url in (
        admin_url(LeadImport, "changelist"),
        admin_url(LeadImport, "add"),
        admin_url(lead_import, "change", lead_import.pk),
        reverse(IMPORT_URL),
    ):
        response = client.get(url)
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("admin:login"))


def test_a_large_upload_spooled_to_disk_is_imported_too(client, revops, settings):
    # Uploads above this size reach the view as a temporary file on disk rather than in memory.
    settings.FILE_UPLOAD_MAX_MEMORY_SIZE = 10
    client.force_login(revops)

    upload(client, GOOD)

    assert LeadImport.objects.get().imported == 2


def test_a_lead_scored_out_of_sales_routing_shows_its_score_instead_of_rules(client, revops):
    receipt = {
        "outcome": "nurture",
        "standardization_flags": {"country": "unknown country 'Atlantis'"},
        "enrichment": {"domain": "prospect.de", "filled": {"employees": "table"}, "failures": {"clearbit": "timeout"}},
        "account": {"result": "no account matched"},
        "score": {
            "fit": 5,
            "intent": 10,
            "total": 15,
            "disposition": "nurture",
            "matched": [{"rule": "Demo", "points": 10}],
        },
        "routing": {"result": "not routed: nurture"},
    }
    lead = LeadFactory(status=Lead.Status.NURTURE, receipt=receipt)
    client.force_login(revops)

    page = client.get(admin_url(lead, "change", lead.pk)).content.decode()

    assert "Not routed: nurture." in page
    assert "Fit 5 + intent 10 = <strong>15</strong>: nurture." in page
    assert "Demo: +10" in page
    assert "employees from table; failed: clearbit (timeout)." in page
    assert "country: unknown country" in page
    assert "Rules, in order" not in page
    assert "Decided in" not in page


def test_the_lead_page_shows_its_sla_clock_and_escalations(client, revops):
    import datetime as dt

    import time_machine

    from sla.models import Escalation, LeadSla

    lead = LeadFactory(status="assigned")
    started = dt.datetime(2026, 11, 23, 9, 0, tzinfo=dt.UTC)
    LeadSla.objects.create(lead=lead, started_at=started, due_at=started + dt.timedelta(hours=1))
    Escalation.objects.create(lead=lead, action="alert_manager", reason="Breached: no first touch", fired_at=started)
    client.force_login(revops)

    with time_machine.travel(started + dt.timedelta(hours=2), tick=False):
        page = client.get(f"/admin/routing/lead/{lead.pk}/change/").content.decode()

    assert "State now: Breached" in page
    assert "due 2026-11-23 10:00 UTC" in page
    assert "Breached: no first touch" in page
