"""A real worker killed while it sends a notification: the notice does not stay "sending" forever.

The Slack webhook is a server in this process that records the post and never answers, so the worker is caught
mid-send for certain when it is killed.
"""

import os
import signal
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from routing.models import Notification
from routing.notify import notifications_plan, notifications_sweep
from routing.tasks import notify_assignments
from tests import test_worker
from tests.factories import AssignmentFactory, LeadFactory, QueueFactory, RepFactory, UserFactory
from tests.helpers import wait_for_progress
from tests.test_worker import STOP_SECONDS, StartProcess, alive, output_of, start_worker

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

# The real worker's fixtures: a queue of this test's own, and processes stopped (and their logs shown) after it.
celery_queue = test_worker.celery_queue
start_process = test_worker.start_process


class HangingWebhook:
    """Records each POST, then holds the connection open until released."""

    def __init__(self) -> None:
        self.posts = 0
        self.release = threading.Event()
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                hook.posts += 1
                hook.release.wait(60)
                self.send_response(200)
                self.end_headers()

            def log_message(self, format, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"


@pytest.fixture
def hanging_webhook():
    hook = HangingWebhook()
    thread = threading.Thread(target=hook.server.serve_forever, daemon=True)
    thread.start()
    yield hook
    hook.release.set()
    hook.server.shutdown()
    hook.server.server_close()


def test_a_slack_notice_whose_worker_was_killed_mid_send_becomes_delivery_unknown(
    start_process: StartProcess, celery_queue: str, hanging_webhook: HangingWebhook
) -> None:
    rep = RepFactory(user=UserFactory(email=""), slack_webhook_url=hanging_webhook.url)
    assignment = AssignmentFactory(lead=LeadFactory(owner=rep, status="assigned"), rep=rep, queue=QueueFactory())
    notifications, task = notifications_plan(assignment=assignment)
    Notification.objects.bulk_create(notifications)
    task.save()
    # The worker waits for Slack far longer than the test takes to kill it.
    doomed = start_worker(start_process, celery_queue, {"LEADROUTER_SLACK_TIMEOUT_SECONDS": "600"}, name="doomed")

    notify_assignments.delay([assignment.pk])
    wait_for_progress(
        lambda: (hanging_webhook.posts, output_of([doomed])),
        lambda value: value[0] == 1,
        what="the worker never posted to Slack (posts, log bytes)",
        check=alive([doomed]),
        poll_seconds=0.05,
    )
    os.killpg(doomed.pid, signal.SIGKILL)
    doomed.wait(STOP_SECONDS)

    stuck = Notification.objects.get(assignment=assignment)
    assert (stuck.status, stuck.attempts) == ("sending", 1)
    assert stuck.sending_since is not None

    # The sweep, once the timeout passed (0 here): Slack is not posted again but shown as delivery unknown.
    notifications_sweep(sending_for_seconds=0)

    stuck.refresh_from_db()
    assert stuck.status == "unknown"
    assert hanging_webhook.posts == 1
