from django import forms

from territories.picklists import INDUSTRIES


class SimulateLeadForm(forms.Form):
    """A lead as a form or a CRM would send it; values are standardized exactly as at intake."""

    email = forms.CharField(required=False)
    first_name = forms.CharField(required=False)
    last_name = forms.CharField(required=False)
    title = forms.CharField(required=False)
    company = forms.CharField(required=False)
    website = forms.CharField(required=False)
    country = forms.CharField(required=False, help_text="A code or a name: DE, Germany, Deutschland.")
    state = forms.CharField(required=False, label="State / region", help_text="US-CA, California, Bayern…")
    postal_code = forms.CharField(required=False)
    employees = forms.CharField(required=False, help_text="A number or a range: 250, 51-200.")
    industry = forms.ChoiceField(required=False, choices=[("", "—"), *INDUSTRIES])
    product_interest = forms.CharField(required=False)
    source = forms.CharField(required=False, help_text="demo request, webinar, partner…")
    campaign = forms.CharField(required=False)

    def raw_lead(self) -> dict[str, str]:
        return {name: value for name, value in self.cleaned_data.items() if value}
