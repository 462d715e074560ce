"""Regional RevOps: object permissions (django-guardian) on a territory cover its subtree, and nothing else."""

import pytest
from django.urls import reverse
from guardian.shortcuts import assign_perm

from territories.models import Territory
from tests.factories import TerritoryCriterionFactory, TerritoryFactory, UserFactory
from tests.helpers import inline_management

pytestmark = pytest.mark.django_db


@pytest.fixture
def regions():
    emea = TerritoryFactory(name="EMEA")
    dach = TerritoryFactory(name="DACH", parent=emea)
    germany = TerritoryFactory(name="Germany", parent=dach)
    TerritoryCriterionFactory(territory=germany, kind="country", value="DE")
    amer = TerritoryFactory(name="AMER")
    return {"emea": emea, "dach": dach, "germany": germany, "amer": amer}


@pytest.fixture
def regional(regions):
    """Staff, not in the RevOps group: granted change on EMEA only."""
    user = UserFactory(username="emea.revops", is_staff=True)
    assign_perm("territories.change_territory", user, regions["emea"])
    return user


def change_url(territory):
    return reverse("admin:territories_territory_change", args=[territory.pk])


def test_a_regional_user_lists_only_their_territory_and_its_subtree(client, regional):
    client.force_login(regional)

    page = client.get(reverse("admin:territories_territory_changelist"))

    assert page.status_code == 200
    listed = {row.name for row in page.context["cl"].result_list}
    assert listed == {"EMEA", "DACH", "Germany"}


def test_a_regional_user_edits_a_territory_below_their_grant_with_its_criteria(client, regional, regions):
    client.force_login(regional)
    germany = regions["germany"]
    criterion = germany.criteria.get()
    form = {
        "name": "Germany",
        "parent": regions["dach"].pk,
        "description": "All of Germany",
        "queue": "",
        "rep": "",
        **inline_management("criteria", total=2, initial=1),
        "criteria-0-id": criterion.pk,
        "criteria-0-territory": germany.pk,
        "criteria-0-kind": "country",
        "criteria-0-value": "DE",
        "criteria-1-territory": germany.pk,
        "criteria-1-kind": "country",
        "criteria-1-value": "AT",
    }

    response = client.post(change_url(germany), form)

    assert response.status_code == 302, response.context["adminform"].form.errors if response.context else ""
    germany.refresh_from_db()
    assert germany.description == "All of Germany"
    assert sorted(germany.criteria.values_list("value", flat=True)) == ["AT", "DE"]


def test_a_regional_user_cannot_open_or_change_a_territory_outside_their_grant(client, regional, regions):
    client.force_login(regional)
    amer = regions["amer"]

    opened = client.get(change_url(amer))
    posted = client.post(change_url(amer), {"name": "Hijacked"})

    # The admin answers as if the row did not exist: no data of it, and no change.
    assert opened.status_code == 302
    assert "AMER" not in opened.content.decode()
    assert posted.status_code == 302
    assert Territory.objects.get(pk=amer.pk).name == "AMER"


def test_a_regional_user_cannot_add_delete_or_grant(client, regional, regions):
    client.force_login(regional)
    emea = regions["emea"]

    assert client.get(reverse("admin:territories_territory_add")).status_code == 403
    assert client.get(reverse("admin:territories_territory_delete", args=[emea.pk])).status_code == 403
    permissions = client.get(reverse("admin:territories_territory_permissions", args=[emea.pk]))
    assert permissions.status_code == 403


def test_revops_grant_object_permissions_in_admin(client, revops, regions):
    client.force_login(revops)

    page = client.get(reverse("admin:territories_territory_permissions", args=[regions["emea"].pk]))

    assert page.status_code == 200
    assert "Object permissions" in client.get(change_url(regions["emea"])).content.decode()


def test_staff_without_any_grant_see_no_territory(client, regions):
    client.force_login(UserFactory(username="other.staff", is_staff=True))

    assert client.get(reverse("admin:territories_territory_changelist")).status_code == 403
    assert client.get(change_url(regions["emea"])).status_code in (302, 403)


def test_a_regional_user_cannot_move_a_territory_out_of_their_region(client, regional, regions):
    client.force_login(regional)
    germany = regions["germany"]
    form = {
        "name": "Germany",
        "parent": regions["amer"].pk,
        "description": "",
        "queue": "",
        "rep": "",
        **inline_management("criteria", total=0, initial=0),
    }

    response = client.post(change_url(germany), form)

    assert response.status_code == 200
    assert "parent" in response.context["adminform"].form.errors
    assert Territory.objects.get(pk=germany.pk).parent == regions["dach"]
