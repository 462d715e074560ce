"""The coverage admin as RevOps use it: pages, forms, inline validation and actions."""

import datetime as dt

import pytest
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.urls import reverse
from django.utils import timezone
from django.utils.html import escape

from leadrouter.coverage.versions import draft_create
from territories.models import (
    CoverageDraft,
    CoverageRevision,
    OutOfOffice,
    Profile,
    Rep,
    Territory,
    TerritoryCriterion,
    WorkingHours,
)
from tests.factories import (
    AccountDomainFactory,
    AccountFactory,
    LeadFactory,
    OpportunityFactory,
    OutOfOfficeFactory,
    ProductLineFactory,
    QueueFactory,
    QueueMembershipFactory,
    RepFactory,
    SkillFactory,
    TeamFactory,
    TerritoryCriterionFactory,
    TerritoryFactory,
    UserFactory,
    WorkingHoursFactory,
)
from tests.helpers import admin_url, inline_management, messages_text

pytestmark = pytest.mark.django_db
User = get_user_model()

APP_MODELS = sorted(
    (model for model in admin.site._registry if model._meta.app_label == "territories"),
    key=lambda model: model._meta.label_lower,
)


@pytest.fixture
def one_of_everything(rep):
    """At least one row of every coverage model, so every change page can be opened."""
    skill = SkillFactory(code="german")
    rep.skills.add(skill)
    ProductLineFactory(code="analytics")
    queue = QueueFactory(name="EMEA Inbound")
    QueueMembershipFactory(queue=queue, rep=rep)
    emea = TerritoryFactory(name="EMEA", queue=queue)
    TerritoryCriterionFactory(territory=emea, kind="country", value="DE")
    account = AccountFactory(name="Acme", owner=rep, territory=emea)
    AccountDomainFactory(account=account, domain="acme.com")
    OpportunityFactory(account=account, owner=rep)
    WorkingHoursFactory(rep=rep)
    OutOfOfficeFactory(rep=rep)
    LeadFactory(owner=rep, queue=queue, territory=emea, account=account)
    Profile.objects.create(user=UserFactory(username="head-of-sales"), time_zone="America/New_York")
    # A draft of the live model, which records the live model as version 1.
    draft_create("Next quarter")


@pytest.mark.parametrize("model", APP_MODELS, ids=lambda model: model.__name__)
def test_revops_can_open_changelist_add_and_change_pages(client, revops, one_of_everything, model):
    client.force_login(revops)
    model_admin = admin.site._registry[model]

    assert client.get(admin_url(model, "changelist")).status_code == 200
    add_page = client.get(admin_url(model, "add"))
    request = add_page.wsgi_request
    assert add_page.status_code == (200 if model_admin.has_add_permission(request) else 403)
    obj = model.objects.first()
    assert obj is not None, f"add a {model.__name__} row to the one_of_everything fixture"
    assert client.get(admin_url(model, "change", obj.pk)).status_code == 200
    assert client.get(admin_url(model, "history", obj.pk)).status_code == 200


@pytest.mark.parametrize("model", APP_MODELS, ids=lambda model: model.__name__)
def test_rep_is_sent_to_login_from_every_admin_page(client, rep, one_of_everything, model):
    client.force_login(rep.user)
    obj = model.objects.first()

    for url in (admin_url(model, "changelist"), admin_url(model, "add"), admin_url(model, "change", obj.pk)):
        response = client.get(url)
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("admin:login"))


def test_revops_cannot_edit_users(client, revops):
    # Editing users would let RevOps make themselves superuser; reps are created through the rep form.
    client.force_login(revops)

    assert client.get(reverse("admin:auth_user_changelist")).status_code == 403


def test_rep_add_form_creates_the_user_and_the_rep(client, revops, team, manager):
    client.force_login(revops)
    german = SkillFactory(code="german")
    data = {
        "username": "anna",
        "email": "anna@example.com",
        "first_name": "Anna",
        "last_name": "Schmidt",
        "team": team.pk,
        "manager": manager.pk,
        "active": "on",
        "time_zone": "Europe/Berlin",
        "max_open_leads": "25",
        "daily_cap": "",
        "skills": [german.pk],
        **inline_management("working_hours", 1),
        "working_hours-0-weekday": "0",
        "working_hours-0-start": "09:00",
        "working_hours-0-end": "17:00",
        **inline_management("out_of_office", 0),
    }

    response = client.post(admin_url(Rep, "add"), data)

    assert response.status_code == 302, response.context["adminform"].form.errors
    rep = Rep.objects.get(user__username="anna")
    assert (rep.user.email, rep.user.get_full_name(), rep.manager) == ("anna@example.com", "Anna Schmidt", manager)
    assert not rep.user.is_staff
    assert list(rep.skills.all()) == [german]
    assert rep.working_hours.count() == 1


def test_rep_add_form_says_when_the_username_is_taken(client, revops, rep):
    client.force_login(revops)

    response = client.post(
        admin_url(Rep, "add"),
        {
            "username": "REP",
            "email": "x@example.com",
            "time_zone": "UTC",
            "max_open_leads": "10",
            **inline_management("working_hours", 0),
            **inline_management("out_of_office", 0),
        },
    )

    assert response.status_code == 200
    assert "A user named “REP” exists already" in response.content.decode()
    assert Rep.objects.count() == 1


def test_rep_change_form_edits_the_users_details_through_the_service(client, revops, rep):
    client.force_login(revops)
    page = client.get(admin_url(Rep, "change", rep.pk))
    assert "rep@example.com" in page.content.decode()

    response = client.post(
        admin_url(Rep, "change", rep.pk),
        {
            "email": "new@example.com",
            "first_name": "Renate",
            "last_name": "Roth",
            "team": rep.team_id,
            "manager": rep.manager_id,
            "active": "on",
            "time_zone": "Europe/Berlin",
            "max_open_leads": "12",
            **inline_management("working_hours", 0),
            **inline_management("out_of_office", 0),
        },
    )

    assert response.status_code == 302
    rep.refresh_from_db()
    assert (rep.user.username, rep.user.email, rep.user.first_name, rep.max_open_leads) == (
        "rep",
        "new@example.com",
        "Renate",
        12,
    )


def test_team_managers_are_picked_from_active_users_without_the_user_admin(client, revops, team):
    UserFactory(username="gone", is_active=False)
    client.force_login(revops)

    response = client.get(admin_url(team, "change", team.pk))

    field = response.context["adminform"].form.fields["managers"]
    assert "gone" not in {user.username for user in field.queryset}
    assert "selectfilter" in str(field.widget.render("managers", []))


def test_activate_and_deactivate_actions_change_the_selected_reps(client, revops, rep, outsider):
    client.force_login(revops)
    changelist = admin_url(Rep, "changelist")

    response = client.post(changelist, {"action": "deactivate", "_selected_action": [rep.pk, outsider.pk]})

    assert response.status_code == 302
    assert not Rep.objects.filter(active=True).exists()
    assert "Deactivated 2 rep(s)" in messages_text(response)

    response = client.post(changelist, {"action": "activate", "_selected_action": [rep.pk]})

    assert "Activated 1 rep(s)" in messages_text(response)
    assert list(Rep.objects.filter(active=True)) == [rep]


def test_out_of_office_action_asks_for_the_period_then_records_it_in_each_reps_zone(client, revops, rep, outsider):
    outsider.time_zone = "America/New_York"
    outsider.save()
    client.force_login(revops)
    changelist = admin_url(Rep, "changelist")
    selected = {"action": "set_out_of_office", "_selected_action": [rep.pk, outsider.pk]}

    # The first POST, from the changelist, shows the intermediate page.
    page = client.post(changelist, selected)
    assert page.status_code == 200
    assert "Set out of office" in page.content.decode()
    assert str(rep) in page.content.decode()

    # The period must end after it starts.
    period = {"starts_at_0": "2030-07-01", "starts_at_1": "09:00", "reason": "Summer"}
    refused = client.post(
        changelist, {**selected, **period, "ends_at_0": "2030-06-01", "ends_at_1": "09:00", "apply": "1"}
    )
    assert refused.status_code == 200
    assert "The period must end after it starts" in refused.content.decode()
    assert not OutOfOffice.objects.exists()

    done = client.post(
        changelist, {**selected, **period, "ends_at_0": "2030-07-15", "ends_at_1": "18:00", "apply": "1"}
    )
    assert done.status_code == 302
    assert "Out of office recorded for 2 rep(s)" in messages_text(done)
    periods = OutOfOffice.objects.order_by("rep__user__username")
    assert [(p.rep, p.reason) for p in periods] == [(outsider, "Summer"), (rep, "Summer")]
    # 18:00 where each rep is: New York (EDT, UTC-4) and Berlin (CEST, UTC+2).
    assert periods[0].ends_at == dt.datetime(2030, 7, 15, 22, 0, tzinfo=dt.UTC)
    assert periods[1].ends_at == dt.datetime(2030, 7, 15, 16, 0, tzinfo=dt.UTC)


def test_a_reps_time_off_is_typed_and_shown_in_the_reps_zone_on_the_rep_page(client, revops, rep):
    # RevOps read pages in New York; the Berlin rep's page shows and takes their time off in Berlin time.
    Profile.objects.create(user=revops, time_zone="America/New_York")
    client.force_login(revops)
    data = {
        **working_hours_post(rep, []),
        **inline_management("out_of_office", 1),
        "out_of_office-0-starts_at_0": "2030-01-14",
        "out_of_office-0-starts_at_1": "09:00",
        "out_of_office-0-ends_at_0": "2030-01-18",
        "out_of_office-0-ends_at_1": "18:00",
        "out_of_office-0-reason": "Trade fair",
    }

    response = client.post(admin_url(Rep, "change", rep.pk), data)

    assert response.status_code == 302, response.content.decode()
    period = OutOfOffice.objects.get(rep=rep)
    assert period.starts_at == dt.datetime(2030, 1, 14, 8, 0, tzinfo=dt.UTC)
    page = client.get(admin_url(Rep, "change", rep.pk)).content.decode()
    assert "in the rep&#x27;s own time zone" in page
    assert 'value="09:00:00"' in page and 'value="18:00:00"' in page
    assert "2030-01-14 09:00 → 2030-01-18 18:00 CET" in page


def working_hours_post(rep, windows):
    data = {
        "email": rep.user.email,
        "team": rep.team_id,
        "active": "on",
        "time_zone": rep.time_zone,
        "max_open_leads": rep.max_open_leads,
        **inline_management("working_hours", len(windows)),
        **inline_management("out_of_office", 0),
    }
    for index, (weekday, start, end) in enumerate(windows):
        data |= {
            f"working_hours-{index}-weekday": weekday,
            f"working_hours-{index}-start": start,
            f"working_hours-{index}-end": end,
        }
    return data


def test_overlapping_working_hours_on_one_weekday_are_refused(client, revops, rep):
    client.force_login(revops)

    response = client.post(
        admin_url(Rep, "change", rep.pk), working_hours_post(rep, [(0, "09:00", "13:00"), (0, "12:00", "17:00")])
    )

    assert response.status_code == 200
    assert "Monday 09:00–13:00 overlaps Monday 12:00–17:00; merge them into one window" in response.content.decode()
    assert not WorkingHours.objects.exists()


def test_a_night_shift_may_not_run_into_the_next_mornings_window(client, revops, rep):
    client.force_login(revops)

    response = client.post(
        admin_url(Rep, "change", rep.pk), working_hours_post(rep, [(6, "22:00", "06:00"), (0, "05:00", "13:00")])
    )

    assert "Sunday 22:00–06:00 overlaps Monday 05:00–13:00" in response.content.decode()


def test_separate_working_hours_windows_are_saved(client, revops, rep):
    client.force_login(revops)

    response = client.post(
        admin_url(Rep, "change", rep.pk), working_hours_post(rep, [(0, "09:00", "12:00"), (0, "13:00", "17:00")])
    )

    assert response.status_code == 302
    assert rep.working_hours.count() == 2


def territory_post(territory_name, criteria, initial=0):
    data = {"name": territory_name, "description": "", **inline_management("criteria", len(criteria), initial)}
    for index, (kind, value) in enumerate(criteria):
        data |= {f"criteria-{index}-kind": kind, f"criteria-{index}-value": value}
    return data


def test_duplicate_criteria_are_named_in_the_message(client, revops):
    client.force_login(revops)

    response = client.post(admin_url(Territory, "add"), territory_post("DACH", [("country", "DE"), ("country", " de")]))

    assert response.status_code == 200
    assert "Country (ISO 3166-1) = DE is listed twice; remove one of the rows." in response.content.decode()
    assert not Territory.objects.exists()


def test_an_invalid_criterion_says_what_to_write(client, revops):
    client.force_login(revops)

    response = client.post(admin_url(Territory, "add"), territory_post("DACH", [("country", "Germany")]))

    assert "GERMANY is not an ISO 3166-1 alpha-2 country code" in response.content.decode()


def test_a_domain_typed_as_a_url_gets_a_clear_message(client, revops):
    client.force_login(revops)
    account = AccountFactory(name="Acme")
    data = {
        "name": "Acme",
        "tier": "",
        "industry": "",
        "country": "DE",
        **inline_management("domains", 1),
        "domains-0-domain": "https://www.Acme.com/about",
    }

    response = client.post(admin_url(account, "change", account.pk), data)

    assert response.status_code == 200
    assert "is a web address or e-mail, not a domain; enter just the domain: acme.com" in response.content.decode()
    assert not account.domains.exists()


@pytest.fixture
def emea_tree(rep):
    queue = QueueFactory(name="EMEA Inbound")
    emea = TerritoryFactory(name="EMEA", queue=queue)
    dach = TerritoryFactory(name="DACH", parent=emea)
    germany = TerritoryFactory(name="Germany", parent=dach, rep=rep)
    austria = TerritoryFactory(name="Austria", parent=dach)
    TerritoryCriterionFactory(territory=dach, kind="country", value="DE")
    TerritoryCriterionFactory(territory=dach, kind="country", value="AT")
    TerritoryCriterionFactory(territory=germany, kind="size_band", value="201-1000")
    return {"emea": emea, "dach": dach, "germany": germany, "austria": austria}


def test_territory_changelist_shows_path_coverage_and_criteria(client, revops, rep, emea_tree):
    client.force_login(revops)

    html = client.get(admin_url(Territory, "changelist")).content.decode()

    assert "EMEA › DACH › Germany" in html
    assert escape(f"Rep: {rep}") in html
    assert "inherits Queue: EMEA Inbound (from EMEA)" in html
    assert "Country: DE, AT" in html or "Country: AT, DE" in html
    assert "Size band: 201-1000" in html
    assert reverse("admin:territories_territory_tree") in html


def test_territory_tree_page_lists_the_tree_with_links(client, revops, emea_tree):
    client.force_login(revops)

    response = client.get(reverse("admin:territories_territory_tree"))

    assert response.status_code == 200
    [emea] = response.context["roots"]
    assert [child.territory.name for child in emea.children] == ["DACH"]
    assert [child.territory.name for child in emea.children[0].children] == ["Austria", "Germany"]
    html = response.content.decode()
    assert admin_url(Territory, "change", emea_tree["germany"].pk) in html
    assert html.index("EMEA") < html.index("DACH") < html.index("Austria") < html.index("Germany")


def test_territory_tree_page_is_refused_to_reps(client, rep):
    client.force_login(rep.user)

    assert client.get(reverse("admin:territories_territory_tree")).status_code == 302


def test_admin_index_links_the_tree_and_the_change_log(client, revops):
    client.force_login(revops)

    html = client.get(reverse("admin:index")).content.decode()

    assert reverse("admin:territories_territory_tree") in html
    assert reverse("admin:coverage_change_log") in html


@pytest.fixture
def many_rows(team, manager):
    """Thirty of each row type, with the relations the changelists display."""
    skills = [SkillFactory(code=f"skill-{n}") for n in range(10)][:3]
    for n in range(10):
        ProductLineFactory(code=f"product-line-{n}")
    queue = QueueFactory(name="Big queue")
    parent = TerritoryFactory(name="World", queue=queue)
    for n in range(30):
        rep = RepFactory(team=team, manager=manager, skills=skills)
        OutOfOfficeFactory(rep=rep, starts_at=timezone.now() - dt.timedelta(days=1))
        QueueMembershipFactory(queue=queue, rep=rep)
        territory = TerritoryFactory(name=f"Territory {n}", parent=parent, rep=rep if n % 2 else None)
        TerritoryCriterionFactory(territory=territory, kind="country", value="DE")
        account = AccountFactory(name=f"Account {n}", owner=rep, territory=territory)
        AccountDomainFactory(account=account)
        OpportunityFactory(account=account, owner=rep)
        LeadFactory(owner=rep, queue=queue, territory=territory, account=account, status="assigned")
    for n in range(5):
        TeamFactory(name=f"Team {n}").managers.add(manager)
        Profile.objects.create(user=UserFactory(), time_zone="Asia/Tokyo")
        version = CoverageRevision.objects.create(
            number=n + 1, kind="admin", author=manager, document={"version": 1}, digest=str(n)
        )
        CoverageDraft.objects.create(name=f"Draft {n}", text="version: 1\n", base=version, created_by=manager)


def test_changelists_make_a_bounded_number_of_queries(client, revops, many_rows, django_assert_max_num_queries):
    client.force_login(revops)
    for model in APP_MODELS:
        url = admin_url(model, "changelist")
        client.get(url)

        # Session, user, permissions, count, page, prefetches and filters: never one per row.
        with django_assert_max_num_queries(14):
            response = client.get(url)

        assert response.status_code == 200
        assert len(response.context["cl"].result_list) >= 5


def test_criterion_inline_saves_a_normalized_value(client, revops):
    client.force_login(revops)

    response = client.post(admin_url(Territory, "add"), territory_post("California", [("subdivision", "us-ca")]))

    assert response.status_code == 302
    assert TerritoryCriterion.objects.get().value == "US-CA"


def test_product_line_list_counts_the_territories_covering_it(client, revops):
    analytics = ProductLineFactory(code="analytics")
    for name in ("France", "Spain"):
        TerritoryCriterionFactory(territory=TerritoryFactory(name=name), kind="product_line", value="analytics")
    client.force_login(revops)

    response = client.get(admin_url(analytics, "changelist"))

    [row] = response.context["cl"].result_list
    assert row.territory_count == 2
