"""A static website's form, served from its own origin with no script, posts a lead in real Chromium: the visitor
lands on the site's thank-you page, and a mistake shows a plain page saying what to correct."""

import functools
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from routing.models import FormSource, Lead
from tests.e2e.conftest import screenshot

pytestmark = pytest.mark.django_db(transaction=True)

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Book a demo</title></head>
<body>
  <h1>Book a demo</h1>
  <form method="post" action="{action}">
    <label>First name <input name="first_name"></label>
    <label>E-mail <input name="email" type="email" required></label>
    <label>Company <input name="company"></label>
    <label>Country <input name="country"></label>
    <label>What do you need? <textarea name="message"></textarea></label>
    <input name="homepage" tabindex="-1" autocomplete="off" hidden>
    <button type="submit">Request a demo</button>
  </form>
</body></html>
"""


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def website(tmp_path: Path) -> Iterator[str]:
    """A static site on its own port (another origin than the router): its pages are files, nothing more."""
    (tmp_path / "thanks.html").write_text("<!doctype html><title>Thanks</title><h1>Thank you, we will call you</h1>")
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(tmp_path)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    thread.join()


@pytest.fixture
def demo_page(website: str, live_server, tmp_path: Path) -> str:
    form_source = FormSource.objects.create(
        name="Demo page", source="website-demo", thank_you_url=f"{website}/thanks.html"
    )
    (tmp_path / "demo.html").write_text(PAGE.format(action=f"{live_server.url}/forms/{form_source.token}/"))
    return f"{website}/demo.html"


def test_a_visitor_books_a_demo_on_a_static_page_and_lands_on_its_thank_you_page(page: Page, website, demo_page):
    page.goto(demo_page)
    page.get_by_label("First name").fill("Max")
    page.get_by_label("E-mail").fill("max@prospect.de")
    page.get_by_label("Company").fill("Prospect GmbH")
    page.get_by_label("What do you need?").fill("Routing for three regions")

    page.get_by_role("button", name="Request a demo").click()

    expect(page.get_by_role("heading", name="Thank you, we will call you")).to_be_visible()
    assert page.url == f"{website}/thanks.html"
    lead = Lead.objects.get()
    assert (lead.source, lead.lane, lead.raw_payload["email"]) == ("website-demo", "live", "max@prospect.de")
    assert lead.raw_payload["form_answers"] == {"message": "Routing for three regions"}


def test_a_mistake_shows_a_plain_page_saying_what_to_correct(page: Page, demo_page):
    page.goto(demo_page)
    page.get_by_label("E-mail").fill("max@prospect.de")
    page.get_by_label("Country").fill("Narnia")

    page.get_by_role("button", name="Request a demo").click()

    expect(page.get_by_role("heading", name="Please check the form")).to_be_visible()
    expect(page.get_by_text('country: Unknown country "Narnia"')).to_be_visible()
    screenshot(page, "form-post-mistake")
    assert not Lead.objects.exists()
