"""Small helpers the tests share: admin pages, CSV, threads, and waiting on work done elsewhere."""

import contextlib
import csv
import io
import json
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TypeVar

import pytest
from django.contrib.messages import get_messages
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.urls import reverse

# The default hasher takes about 0.4 s per user by design; tests create many users (tests/conftest.py sets this
# for every test). A module's shared fixture, which runs before that per-test setting, uses it too: the logins
# must be checked with the hasher they were made with.
FAST_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def admin_url(model_or_obj, view: str, *args) -> str:
    opts = model_or_obj._meta
    return reverse(f"admin:{opts.app_label}_{opts.model_name}_{view}", args=args)


def messages_text(response) -> str:
    """Every message the admin queued for the user, as one string."""
    return " ".join(str(message) for message in get_messages(response.wsgi_request))


def inline_management(prefix: str, total: int, initial: int = 0) -> dict[str, str]:
    """The management-form fields an admin inline formset posts."""
    return {
        f"{prefix}-TOTAL_FORMS": str(total),
        f"{prefix}-INITIAL_FORMS": str(initial),
        f"{prefix}-MIN_NUM_FORMS": "0",
        f"{prefix}-MAX_NUM_FORMS": "1000",
    }


def import_csv(client, model, text: str):
    """Upload ``text`` through the admin import page; confirm it when the dry run is clean.

    Returns the dry-run page and, when it was confirmed, the final response.
    """
    opts = model._meta
    dry_run = client.post(
        reverse(f"admin:{opts.app_label}_{opts.model_name}_import"),
        {"format": "0", "resource": "0", "import_file": SimpleUploadedFile("upload.csv", text.encode())},
    )
    assert dry_run.status_code == 200
    confirm_form = dry_run.context.get("confirm_form")
    if confirm_form is None:
        return dry_run, None
    done = client.post(
        reverse(f"admin:{opts.app_label}_{opts.model_name}_process_import"),
        {name: confirm_form.initial.get(name, "") for name in confirm_form.fields},
    )
    return dry_run, done


def export_csv(client, model) -> list[dict[str, str]]:
    opts = model._meta
    url = reverse(f"admin:{opts.app_label}_{opts.model_name}_export")
    form = client.get(url).context["form"]
    selected = {name: "on" for name in form.fields if name not in ("format", "resource", "export_items")}
    response = client.post(url, {"format": "0", "resource": "0", **selected})
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    return list(csv.DictReader(io.StringIO(response.content.decode())))


# How long a wait may see nothing move before it fails. Work done elsewhere (a worker process, other threads)
# is slower on a busy machine, not stuck: waits watch progress, never a budget for the whole job.
STALL_SECONDS = 60

T = TypeVar("T")


def backends() -> int:
    """Connections open to the test database (PostgreSQL), this one's included."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()")
        return cursor.fetchone()[0]


def helper_takes_part(
    monkeypatch: pytest.MonkeyPatch, owner: Any, attribute: str, *, helper: str, done: Callable[[Any], int]
) -> Counter[str]:
    """Spy on ``owner.attribute`` (a batch function run by two threads, ``routing.dispatch.two_threads``):
    what ``done`` counts in each call's result, per thread name. The calling thread's second call waits until
    the ``helper`` thread has done something, so that both take part however the machine schedules them."""
    counts: Counter[str] = Counter()
    helper_did = threading.Event()
    real = getattr(owner, attribute)

    def spy(**kwargs: Any) -> Any:
        name = threading.current_thread().name
        if name != helper and counts[name]:
            assert helper_did.wait(STALL_SECONDS), f"the {helper} thread never did anything"
        result = real(**kwargs)
        counts[name] += done(result)
        if name == helper and done(result):
            helper_did.set()
        return result

    monkeypatch.setattr(owner, attribute, spy)
    return counts


def wait_for_progress(
    measure: Callable[[], T],
    done: Callable[[T], bool],
    *,
    what: str,
    check: Callable[[], None] | None = None,
    stall_seconds: float = STALL_SECONDS,
    poll_seconds: float = 0.2,
) -> T:
    """Poll ``measure()`` until ``done(value)`` holds, and return that value.

    Fails only when the value has not changed for ``stall_seconds``: as long as something moves (a count of
    routed leads, a log that grows, threads that finish) the wait goes on, however long the whole job takes.
    ``check`` runs on every poll to fail early, for example when a process the test waits on has exited.
    """
    value = measure()
    changed_at = time.monotonic()
    while not done(value):
        if check is not None:
            check()
        if time.monotonic() - changed_at > stall_seconds:
            pytest.fail(f"{what}: nothing moved for {stall_seconds:g} s (last seen: {value!r})")
        time.sleep(poll_seconds)
        latest = measure()
        if latest != value:
            value, changed_at = latest, time.monotonic()
    return value


def join_all(
    threads: Iterable[threading.Thread], *, what: str = "threads", progress: Callable[[], Any] | None = None
) -> None:
    """Wait for ``threads`` to finish; fail only when none finished (and ``progress()`` did not change) for
    STALL_SECONDS, which is a deadlock, not a slow machine."""
    threads = list(threads)
    wait_for_progress(
        lambda: (sum(thread.is_alive() for thread in threads), progress() if progress is not None else None),
        lambda value: value[0] == 0,
        what=f"{what} still running",
    )


def five_times(work: Callable[[], object]) -> Callable[[], None]:
    """``work`` run five times in a row: one side of a race that should meet the other more than once."""

    def repeated() -> None:
        for _ in range(5):
            work()

    return repeated


def run_together(*work: Callable[[], object], progress: Callable[[], Any] | None = None) -> list[BaseException]:
    """Run each callable in its own thread, all released at once by a barrier, each with its own database
    connection (closed at the end), as separate workers would. Returns what any of them raised.

    ``progress`` (for example a count of routed leads) lets a long job run as long as it keeps moving."""
    barrier = threading.Barrier(len(work))
    errors: list[BaseException] = []

    def run(job: Callable[[], object]) -> None:
        try:
            barrier.wait(STALL_SECONDS)
            job()
        except BaseException as error:
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(job,)) for job in work]
    for thread in threads:
        thread.start()
    join_all(threads, what="workers", progress=progress)
    return errors


class SlackServer:
    """A stand-in for Slack's incoming webhooks: records each POST and answers with the status set for its path."""

    def __init__(self) -> None:
        self.posts: list[dict] = []
        self.statuses: dict[str, int] = {}
        self.hanging: set[str] = set()
        self.release = threading.Event()
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                recorder.posts.append({"path": self.path, "json": json.loads(body)})
                if self.path in recorder.hanging:
                    recorder.release.wait(10)
                status = recorder.statuses.get(self.path, 200)
                self.send_response(status)
                self.send_header("Content-Type", "text/plain")
                self.end_headers()
                self.wfile.write(b"ok" if status == 200 else b"error")

            def log_message(self, format, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def paths(self) -> list[str]:
        return sorted(post["path"] for post in self.posts)


@contextlib.contextmanager
def slack_server() -> Iterator[SlackServer]:
    """A running ``SlackServer``, shut down (and any hanging request released) on exit."""
    server = SlackServer()
    server.thread.start()
    try:
        yield server
    finally:
        server.release.set()
        server.server.shutdown()
        server.server.server_close()
