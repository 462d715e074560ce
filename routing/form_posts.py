"""Plain form posts: a website form posts straight to intake (``POST /forms/<token>/``), so a static page needs no
code of its own.

The form sends ``application/x-www-form-urlencoded`` (or ``multipart/form-data``) to the URL with its form
source's token (``routing.models.FormSource``). The endpoint is CSRF-exempt, the only one that is: the visitor
has no session here, and the token names the form, it does not authenticate anyone. What happens:

1. Over the per-address rate (``THROTTLE_RATE_FORM``): a plain 429 page with Retry-After.
2. An unknown or switched-off token: the plain 404 page.
3. The honeypot field (the form source's ``honeypot_field``, hidden from people) filled in: a bot. It gets the
   same 303 to the thank-you page as a person, so it learns nothing, and the lead is not stored (logged only).
4. Fields named as intake's lead fields (email, first_name, company, country, …) become the lead's; every other
   field goes into ``form_answers``. The lead's source is the form source's, whatever the form sends.
5. The lead is checked by intake's own serializer and stored as ``received`` by ``leads_receive`` (live lane),
   exactly as a lead posted to the API without a key.
6. Valid: 303 See Other to the form source's thank-you URL, set in admin, never taken from the request (no open
   redirect). Invalid: a plain 400 page saying what to correct, for the visitor to go back and fix: a static
   site cannot show field errors, and sending them on to the thank-you page would thank them for nothing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect, QueryDict
from django.shortcuts import render
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST
from rest_framework import serializers

from routing.intake import LeadIntakeSerializer, lead_validate, leads_receive
from routing.models import FormSource
from routing.throttles import FormPostRateThrottle

logger = logging.getLogger(__name__)

# Form fields that become the lead's own (the rest go into form_answers). The source is the form source's; a
# form has no external id, page history or answers object of its own.
FORM_LEAD_FIELDS = frozenset(LeadIntakeSerializer().fields) - {
    "source",
    "external_id",
    "form_answers",
    "page_history",
}
# Fields a form may carry that are no answers: Django's own CSRF field, should a Django site post here.
IGNORED_FIELDS = frozenset({"csrfmiddlewaretoken"})
FORM_CONTENT_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


class HttpResponseSeeOther(HttpResponseRedirect):
    status_code = 303


@dataclass
class FormPost:
    """What became of one form post: stored (``lead_id``), a bot's (``spam``), or ``errors`` to show."""

    lead_id: int | None = None
    spam: bool = False
    errors: list[str] = field(default_factory=list)


def form_payload(data: QueryDict, *, form_source: FormSource) -> dict[str, Any]:
    """The lead intake would store for this form post: lead fields by name (the first value when a field
    repeats; blank ones left out, as a form sends every input), the rest as ``form_answers`` (a list when a
    field repeats, as checkboxes do), and the form source's lead source."""
    payload: dict[str, Any] = {}
    answers: dict[str, Any] = {}
    for name in data:
        if name in IGNORED_FIELDS or name == form_source.honeypot_field:
            continue
        values = data.getlist(name)
        if name in FORM_LEAD_FIELDS:
            value = values[0] if values else ""
            if value.strip():
                payload[name] = value
        else:
            answers[name] = values if len(values) != 1 else values[0]
    if answers:
        payload["form_answers"] = answers
    payload["source"] = form_source.source
    return payload


def _messages(errors: Any, prefix: str = "") -> list[str]:
    """Serializer errors as plain sentences, field first ("email: Enter a valid e-mail address.")."""
    if isinstance(errors, dict):
        found = []
        for name, value in errors.items():
            label = "" if name == serializers.api_settings.NON_FIELD_ERRORS_KEY else str(name)
            found.extend(_messages(value, f"{prefix}{label}: " if label else prefix))
        return found
    if isinstance(errors, list):
        return [message for item in errors for message in _messages(item, prefix)]
    return [f"{prefix}{errors}"]


def form_post_receive(data: QueryDict, *, form_source: FormSource) -> FormPost:
    """Store one form post as a lead, unless the honeypot is filled in (a bot: nothing stored) or intake
    refuses it (``errors``). Side effects: those of ``routing.intake.leads_receive``."""
    if data.get(form_source.honeypot_field, "").strip():
        logger.info("Form %s: a post with the honeypot filled in was not stored.", form_source.name)
        return FormPost(spam=True)
    lead, errors = lead_validate(form_payload(data, form_source=form_source))
    if errors is not None:
        return FormPost(errors=_messages(errors))
    received = leads_receive(payloads=[lead], intake_source=None)
    return FormPost(lead_id=received[0].lead_id)


def _problem(request: HttpRequest, status: int, title: str, messages: list[str]) -> HttpResponse:
    return render(request, "routing/pages/form_problem.html", {"title": title, "messages": messages}, status=status)


@csrf_exempt
@require_POST
def form_post(request: HttpRequest, token: str) -> HttpResponse:
    """``POST /forms/<token>/``: see the module's docstring."""
    throttle = FormPostRateThrottle()
    if not throttle.allow_request(request, None):
        response = _problem(
            request, 429, "Too many posts", ["This address sent too many forms in a short time; try again shortly."]
        )
        wait = throttle.wait()
        if wait is not None:
            response["Retry-After"] = str(max(1, int(wait)))
        return response
    form_source = FormSource.objects.filter(token=token, active=True).first()
    if form_source is None:
        raise Http404("No such form.")
    if request.content_type not in FORM_CONTENT_TYPES:
        return _problem(request, 415, "Not a form post", ["Post the form as an HTML form does."])
    outcome = form_post_receive(request.POST, form_source=form_source)
    if outcome.errors:
        return _problem(request, 400, "Please check the form", outcome.errors)
    return HttpResponseSeeOther(form_source.thank_you_url)
