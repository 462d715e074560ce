"""CSV import/export for the firmographic enrichment table."""

from typing import Any

from import_export import resources, widgets
from import_export.fields import Field

from routing.models import Firmographic
from territories.picklists import INDUSTRIES
from territories.resources import ChoiceWidget, UpperCaseWidget, WholeNumberWidget
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
