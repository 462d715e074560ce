"""The benchmarks' mail backend: the worker builds every message as it would for an SMTP server, and keeps
none of them (a 100,000-lead run would otherwise hold them all in memory)."""

import pytest
from django.core import mail
from django.core.mail import BadHeaderError, EmailMessage, get_connection


def test_each_message_is_built_and_none_is_kept():
    backend = get_connection("leadrouter.bench.DiscardingEmailBackend")
    message = EmailMessage("New lead: Acme", "Open the lead", "router@example.com", ["rep@example.com"])

    assert backend.send_messages([message, message]) == 2
    assert mail.outbox == []  # pytest-django's own outbox: nothing reached it.


def test_a_message_that_cannot_be_built_fails_as_it_would_over_smtp():
    backend = get_connection("leadrouter.bench.DiscardingEmailBackend")
    broken = EmailMessage("New lead\nBcc: everyone@example.com", "Body", "router@example.com", ["rep@example.com"])

    with pytest.raises(BadHeaderError):
        backend.send_messages([broken])
