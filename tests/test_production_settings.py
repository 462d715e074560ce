"""Production defaults: DEBUG off unless asked for, the deploy check clean, a Content-Security-Policy on every
page, and no demo credential in a fresh database.

Settings are read once per process, so the production configurations run in a subprocess with their own
environment (the suite itself runs the local configuration, see leadrouter/pytest_env.py).
"""

import os
import secrets
import string
import subprocess
import sys

import pytest
from django.conf import settings

from leadrouter.demo.loader import DEMO_API_KEY, demo_load
from routing.services import apikey_authenticate

PRODUCTION_KEY = "".join(secrets.choice(string.ascii_letters + string.digits + "!@#%^&*(-_=+)") for _ in range(50))


def run_with(env_overrides: dict[str, str], *args: str, tmp_path) -> subprocess.CompletedProcess[str]:
    # A deployment's environment: none of the test run's own variables (the browser tests allow async-unsafe ORM
    # calls, which the deploy check rightly refuses).
    test_only = ("DEBUG", "SECRET_KEY", "ALLOWED_HOSTS", "DJANGO_ALLOW_ASYNC_UNSAFE")
    env = {key: value for key, value in os.environ.items() if key not in test_only}
    env.update({"LEADROUTER_VAR_DIR": str(tmp_path), **env_overrides})
    return subprocess.run(
        [sys.executable, *args], cwd=settings.BASE_DIR, env=env, capture_output=True, text=True, timeout=120
    )


PRINT_SETTINGS = (
    "import django, os; os.environ['DJANGO_SETTINGS_MODULE'] = 'leadrouter.settings'; django.setup();"
    "from django.conf import settings as s;"
    "print(s.DEBUG, s.SECURE_SSL_REDIRECT, s.SECURE_HSTS_SECONDS, s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE,"
    " s.SECURE_PROXY_SSL_HEADER[0])"
)


def test_with_only_secret_key_and_allowed_hosts_the_deploy_check_is_clean(tmp_path):
    production = {"SECRET_KEY": PRODUCTION_KEY, "ALLOWED_HOSTS": "leads.example.com"}

    check = run_with(production, "manage.py", "check", "--deploy", "--fail-level", "WARNING", tmp_path=tmp_path)
    assert check.returncode == 0, check.stdout + check.stderr

    # DEBUG is off without being asked, and with it HTTPS-only cookies, the redirect and HSTS are on.
    shown = run_with(production, "-c", PRINT_SETTINGS, tmp_path=tmp_path)
    assert shown.stdout.split() == ["False", "True", "31536000", "True", "True", "HTTP_X_FORWARDED_PROTO"]


def test_behind_a_proxy_that_redirects_itself_the_redirect_can_be_turned_off(tmp_path):
    behind_proxy = {"SECRET_KEY": PRODUCTION_KEY, "ALLOWED_HOSTS": "leads.example.com", "SECURE_SSL_REDIRECT": "false"}

    check = run_with(behind_proxy, "manage.py", "check", "--deploy", "--fail-level", "WARNING", tmp_path=tmp_path)
    assert check.returncode == 0, check.stdout + check.stderr

    # The proxy's X-Forwarded-Proto is still trusted, so HTTPS requests are recognised as such.
    shown = run_with(behind_proxy, "-c", PRINT_SETTINGS, tmp_path=tmp_path)
    assert shown.stdout.split() == ["False", "False", "31536000", "True", "True", "HTTP_X_FORWARDED_PROTO"]


def test_without_debug_the_app_refuses_to_start_without_a_secret_key(tmp_path):
    started = run_with({"ALLOWED_HOSTS": "leads.example.com"}, "manage.py", "check", tmp_path=tmp_path)

    assert started.returncode != 0
    assert "ImproperlyConfigured" in started.stderr
    assert "SECRET_KEY and ALLOWED_HOSTS must be set" in started.stderr


def test_every_page_carries_a_content_security_policy_without_inline_scripts(client):
    response = client.get("/accounts/login/")

    policy = {
        directive.split()[0]: directive.split()[1:] for directive in response["Content-Security-Policy"].split("; ")
    }
    assert policy["default-src"] == ["'self'"]
    assert "'unsafe-inline'" not in policy["script-src"]
    assert policy["frame-ancestors"] == ["'none'"]


def test_static_files_are_served_by_the_web_process_itself(client):
    # gunicorn has no static file server; make run's pages must still get their style sheet.
    response = client.get("/static/leadrouter/site.css")

    assert response.status_code == 200
    assert b"".join(response.streaming_content)


@pytest.mark.django_db
def test_the_published_demo_intake_key_exists_only_in_the_demo_data():
    assert apikey_authenticate(raw_key=DEMO_API_KEY) is None

    demo_load()

    assert apikey_authenticate(raw_key=DEMO_API_KEY) is not None
