"""Errors answer in the caller's language: JSON under /api/, a plain page elsewhere, and never settings, the
environment or a traceback. A database that refuses connections is a 503 with Retry-After, not a 500."""

import pytest
from django.db import OperationalError, connection
from django.test import Client
from rest_framework.test import APIClient

from routing.models import Lead
from routing.services import apikey_create

pytestmark = pytest.mark.django_db

LEAD = {"email": "jana.keller@keller-maschinenbau.de", "company": "Keller Maschinenbau GmbH", "country": "DE"}


@pytest.fixture
def intake_client():
    _, raw_key = apikey_create(name="Website form", scopes=["leads:write"])
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {raw_key}")
    return client


def test_an_unknown_api_url_answers_json_404(intake_client):
    response = intake_client.get("/api/v1/no-such-thing/")

    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"detail": "Not found."}


def test_a_wrong_method_on_an_api_view_answers_json_405(intake_client):
    response = intake_client.delete("/api/v1/leads/")

    assert response.status_code == 405
    assert response["Content-Type"] == "application/json"
    assert "DELETE" in response.json()["detail"]


def test_an_unknown_page_answers_the_plain_not_found_page(client):
    response = client.get("/no-such-page/")

    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")
    page = response.content.decode()
    assert "Not found" in page
    assert "SECRET_KEY" not in page and "Traceback" not in page and "urlpatterns" not in page.lower()


def refuse_connections(execute, sql, params, many, context):
    # What PostgreSQL answers when max_connections is reached.
    raise OperationalError("FATAL: sorry, too many clients already")


def test_a_database_that_refuses_connections_answers_503_with_retry_after_and_stores_nothing(intake_client, caplog):
    with connection.execute_wrapper(refuse_connections):
        response = intake_client.post("/api/v1/leads/", LEAD, format="json")

    assert response.status_code == 503
    assert response["Retry-After"] == "5"
    assert "retry" in response.json()["detail"]
    assert not Lead.objects.exists()
    # Operators see it in the log, with the database's own message.
    assert "Database unavailable" in caplog.text and "too many clients" in caplog.text

    # The client's retry, once the database answers again, is accepted.
    retried = intake_client.post("/api/v1/leads/", LEAD, format="json")
    assert retried.status_code in (200, 201, 202), retried.content
    assert Lead.objects.count() == 1


def fail_like_a_bug(execute, sql, params, many, context):
    raise RuntimeError("an unexpected error deep inside the request")


def test_an_api_server_error_answers_json_500_without_details(intake_client):
    # As a deployed server answers: the exception is logged, the client gets the handler's response.
    intake_client.raise_request_exception = False
    with connection.execute_wrapper(fail_like_a_bug):
        response = intake_client.post("/api/v1/leads/", LEAD, format="json")

    assert response.status_code == 500
    assert response["Content-Type"] == "application/json"
    assert "unexpected error" not in response.json()["detail"]


def test_a_page_server_error_answers_the_plain_error_page(revops):
    client = Client(raise_request_exception=False)
    client.force_login(revops)
    with connection.execute_wrapper(fail_like_a_bug):
        response = client.get("/admin/")

    assert response.status_code == 500
    assert response["Content-Type"].startswith("text/html")
    page = response.content.decode()
    assert "Something went wrong" in page
    assert "unexpected error" not in page and "Traceback" not in page
