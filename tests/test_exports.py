"""CSV exports cannot carry formulas: a cell a spreadsheet would run (=, +, -, @, tab, CR) comes out as text.

Every admin that exports is found in the admin registry, so a new export without a case here fails
``test_every_admin_export_is_covered``.
"""

import pytest
from django.contrib import admin
from import_export.admin import ExportMixin

from routing.models import CrmConnector, CrmOwner, Firmographic
from territories.export_formats import FormulaSafeCSV, escape_formula
from territories.models import Account, Rep, Territory
from tests.factories import AccountFactory, RepFactory, TerritoryFactory, UserFactory
from tests.helpers import export_csv

INJECTION = '=HYPERLINK("x")'

# For each exported model: make one row carrying the injection, and the column it lands in.
ROW_WITH_A_FORMULA = {
    Rep: (lambda: RepFactory(user=UserFactory(username="formula", first_name=INJECTION)), "first_name"),
    Territory: (lambda: TerritoryFactory(name=INJECTION), "name"),
    Account: (lambda: AccountFactory(name=INJECTION), "name"),
    Firmographic: (
        lambda: Firmographic.objects.create(domain="formula.example", company=INJECTION, country="DE"),
        "company",
    ),
    CrmOwner: (
        lambda: CrmOwner.objects.create(
            connector=CrmConnector.objects.create(name="HubSpot", kind="hubspot", token_env="HUBSPOT_TOKEN"),
            rep=RepFactory(),
            owner_id=INJECTION,
        ),
        "owner_id",
    ),
}


def exporting_admins() -> dict[type, ExportMixin]:
    return {
        model: model_admin
        for model, model_admin in admin.site._registry.items()
        if isinstance(model_admin, ExportMixin)
    }


def test_every_admin_export_is_covered():
    assert set(exporting_admins()) == set(ROW_WITH_A_FORMULA)


@pytest.mark.parametrize("model", list(ROW_WITH_A_FORMULA), ids=lambda model: model.__name__)
def test_an_exported_formula_comes_out_as_text(model, client, revops):
    make_row, column = ROW_WITH_A_FORMULA[model]
    make_row()
    client.force_login(revops)

    rows = export_csv(client, model)

    assert [row[column] for row in rows if row[column].endswith(INJECTION)] == ["'" + INJECTION]
    # Every format the admin offers for this model escapes.
    assert all(
        issubclass(format_class, FormulaSafeCSV) for format_class in exporting_admins()[model].get_export_formats()
    )


@pytest.mark.parametrize(
    "cell", ["+cmd|' /C calc'!A0", "-2+3+cmd|' /C calc'!A0", "@SUM(A1:A9)", "\t=1+1", "\r=1+1", "-"]
)
def test_every_formula_trigger_is_written_as_text(cell):
    assert escape_formula(cell) == "'" + cell


@pytest.mark.parametrize("cell", ["-5", "-0.5", "+49", "Acme GmbH", "", None, 12])
def test_numbers_and_plain_text_are_left_alone(cell):
    assert escape_formula(cell) == cell
