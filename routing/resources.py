"""CSV import/export for the firmographic enrichment table and the reps' CRM owner ids."""

from typing import Any

from import_export import resources, widgets
from import_export.fields import Field

from routing.models import CrmConnector, CrmOwner, Firmographic
from territories.models import Rep
from territories.picklists import INDUSTRIES
from territories.resources import ChoiceWidget, NamedForeignKeyWidget, UpperCaseWidget, WholeNumberWidget
from territories.validators import normalize_domain


class DomainWidget(widgets.CharWidget):
    """Vendor exports write domains every which way (``https://www.Acme.com/``); keep the bare domain."""

    def clean(self, value: Any, row: Any = None, **kwargs: Any) -> str:
        return normalize_domain(str(value or ""))


class FirmographicResource(resources.ModelResource):
    domain = Field(attribute="domain", column_name="domain", widget=DomainWidget())
    company = Field(attribute="company", column_name="company", widget=widgets.CharWidget())
    employees = Field(attribute="employees", column_name="employees", widget=WholeNumberWidget())
    industry = Field(attribute="industry", column_name="industry", widget=ChoiceWidget(INDUSTRIES, noun="industry"))
    country = Field(attribute="country", column_name="country", widget=UpperCaseWidget())

    class Meta:
        model = Firmographic
        fields = ("domain", "company", "employees", "industry", "country")
        import_id_fields = ("domain",)
        clean_model_instances = True
        skip_unchanged = True


class CrmOwnerResource(resources.ModelResource):
    """One row per rep and CRM: ``connector,username,owner_id`` (HubSpot owner id, Salesforce User Id)."""

    connector = Field(
        attribute="connector",
        column_name="connector",
        widget=NamedForeignKeyWidget(CrmConnector, "name", missing="No CRM connector named “{value}”; add it first."),
    )
    rep = Field(
        attribute="rep",
        column_name="username",
        widget=NamedForeignKeyWidget(Rep, "user__username", missing="No rep with username “{value}”."),
    )
    owner_id = Field(attribute="owner_id", column_name="owner_id", widget=widgets.CharWidget())

    class Meta:
        model = CrmOwner
        fields = ("connector", "rep", "owner_id")
        import_id_fields = ("connector", "rep")
        clean_model_instances = True
        skip_unchanged = True
