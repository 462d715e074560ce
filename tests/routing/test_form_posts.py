"""A static website's form posts straight to intake (POST /forms/<token>/): the lead is stored as received in the
live lane, the visitor lands on the thank-you page set in admin, a bot filling the honeypot is thanked and
forgotten, and a mistake gets a plain page saying what to fix."""

import pytest
from django.test import Client
from django.urls import reverse

from routing.models import FormSource, Lead
from tests.helpers import admin_url, messages_text

pytestmark = pytest.mark.django_db

FORM = "application/x-www-form-urlencoded"


@pytest.fixture
def demo_form(db):
    return FormSource.objects.create(
        name="Website demo request", source="website-demo", thank_you_url="https://www.example.com/thanks"
    )


def post(client, form_source_or_token, body: str, **extra):
    token = getattr(form_source_or_token, "token", form_source_or_token)
    return client.post(f"/forms/{token}/", body, content_type=FORM, **extra)


def test_a_form_post_is_stored_as_received_and_the_visitor_sees_the_thank_you_page(demo_form):
    # A browser posting from another site carries no CSRF token: the endpoint does not ask for one.
    client = Client(enforce_csrf_checks=True)
    body = (
        "first_name=Max&last_name=Muster&email=max%40prospect.de&company=Prospect+GmbH&country=Deutschland"
        "&employees=250&employees=&message=Demo+please&interest=routing&interest=sla&homepage=&source=evil"
        "&external_id=x1&csrfmiddlewaretoken=abc"
    )

    response = post(client, demo_form, body)

    assert response.status_code == 303
    assert response["Location"] == "https://www.example.com/thanks"
    lead = Lead.objects.get()
    assert (lead.status, lead.lane, lead.source, lead.intake_source, lead.external_id) == (
        "received",
        "live",
        "website-demo",
        None,
        "",
    )
    assert lead.raw_payload == {
        "first_name": "Max",
        "last_name": "Muster",
        "email": "max@prospect.de",
        "company": "Prospect GmbH",
        "country": "Deutschland",
        "employees": "250",
        "source": "website-demo",
        # A field named as no lead field is an answer, whatever its name: the source is the form source's.
        "form_answers": {
            "message": "Demo please",
            "interest": ["routing", "sla"],
            "source": "evil",
            "external_id": "x1",
        },
    }


def test_a_filled_honeypot_is_thanked_the_same_and_nothing_is_stored(demo_form):
    response = post(Client(), demo_form, "email=bot%40spam.example&homepage=http%3A%2F%2Fspam.example")

    assert response.status_code == 303
    assert response["Location"] == "https://www.example.com/thanks"
    assert not Lead.objects.exists()


@pytest.mark.parametrize(
    ("body", "shown"),
    [
        ("first_name=Max", "A lead needs an email, a phone, or a company together with a first or last name."),
        ("email=not-an-address", "email: Enter a valid e-mail address."),
        ("email=max%40prospect.de&country=Narnia", "country: Unknown country &quot;Narnia&quot;"),
        ("email=max%40prospect.de&employees=lots", "employees: Send a whole number"),
        ("email=max%40prospect.de&note=a%00b", "contains a NUL character"),
        ("email=" + "m" * 300 + "%40prospect.de", "email: Ensure this field has no more than 254 characters."),
        ("email=max%40prospect.de&essay=" + "x" * 20000, "form_answers"),
        ("homepage=", "A lead needs an email"),
    ],
)
def test_a_mistake_gets_a_plain_400_page_saying_what_to_fix_and_nothing_is_stored(demo_form, body, shown):
    response = post(Client(), demo_form, body)

    assert response.status_code == 400
    page = response.content.decode()
    assert "Your form was not sent." in page
    assert shown in page
    assert not Lead.objects.exists()


def test_the_thank_you_url_comes_from_the_form_source_never_the_request(demo_form):
    response = post(
        Client(),
        demo_form,
        "email=max%40prospect.de&next=https%3A%2F%2Fevil.example&thank_you_url=https%3A%2F%2Fevil.example",
        HTTP_REFERER="https://evil.example/",
    )

    assert response["Location"] == "https://www.example.com/thanks"


def test_unknown_or_switched_off_tokens_are_404s(demo_form):
    demo_form.active = False
    demo_form.save()

    assert post(Client(), demo_form, "email=max%40prospect.de").status_code == 404
    assert post(Client(), "lf_no-such-token", "email=max%40prospect.de").status_code == 404
    assert post(Client(), "x" * 5000, "email=max%40prospect.de").status_code == 404
    assert not Lead.objects.exists()


def test_only_form_posts_are_taken(demo_form):
    client = Client()
    url = f"/forms/{demo_form.token}/"

    assert client.get(url).status_code == 405
    assert client.post(url, '{"email": "max@prospect.de"}', content_type="application/json").status_code == 415
    multipart = client.post(url, {"email": "max@prospect.de", "company": "Prospect"})
    assert multipart.status_code == 303
    assert Lead.objects.count() == 1


def test_a_body_over_the_limits_is_a_400_not_a_crash(demo_form, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    settings.DATA_UPLOAD_MAX_NUMBER_FIELDS = 50

    assert post(Client(), demo_form, "email=max%40prospect.de&a=" + "x" * 2000).status_code == 400
    assert post(Client(), demo_form, "&".join(f"f{n}=1" for n in range(60))).status_code == 400
    assert not Lead.objects.exists()


def test_posts_over_the_rate_get_429_with_retry_after(demo_form, settings):
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {"form": "2/minute"}}
    client = Client()

    codes = [post(client, demo_form, "email=max%40prospect.de").status_code for _ in range(3)]

    assert codes == [303, 303, 429]
    refused = post(client, demo_form, "email=max%40prospect.de")
    assert int(refused["Retry-After"]) >= 1
    assert Lead.objects.count() == 2


def test_revops_rotate_a_token_in_admin_and_the_old_one_stops_working(client, revops, demo_form):
    old = demo_form.token
    client.force_login(revops)

    page = client.get(admin_url(demo_form, "change", demo_form.pk)).content.decode()
    assert f"/forms/{old}/" in page

    response = client.post(
        reverse("admin:routing_formsource_changelist"),
        {"action": "rotate_tokens", "_selected_action": [demo_form.pk]},
        follow=True,
    )

    demo_form.refresh_from_db()
    assert demo_form.token != old and demo_form.token.startswith("lf_")
    assert demo_form.token in messages_text(response)
    assert post(Client(), old, "email=max%40prospect.de").status_code == 404
    assert post(Client(), demo_form, "email=max%40prospect.de").status_code == 303


def test_admin_refuses_a_honeypot_named_as_a_lead_field_and_a_thank_you_url_that_is_not_http(client, revops):
    client.force_login(revops)

    response = client.post(
        admin_url(FormSource, "add"),
        {
            "name": "Contact",
            "source": "contact",
            "thank_you_url": "javascript:alert(1)",
            "honeypot_field": "email",
            "active": "on",
        },
    )

    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert "honeypot_field" in errors and "thank_you_url" in errors
    assert not FormSource.objects.exists()
