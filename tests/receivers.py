"""Local HTTP stand-ins for what integrations talk to: a webhook receiver, HubSpot's CRM objects API and
Salesforce's REST API, each answering as documented. Nothing leaves the machine."""

import contextlib
import json
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

HANG = "hang"


@dataclass
class Request:
    method: str
    path: str
    headers: Message  # names are case-insensitive, as in HTTP
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Answer:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


class Receiver:
    """Records every request and answers from a script: each entry of ``script`` answers one request (an
    ``Answer``, or ``HANG`` to hold the request open until the server stops), then ``default``.
    ``check(request)`` may return an ``Answer`` of its own (a vendor's 401 or 404)."""

    def __init__(self, *, default: Answer | str | None = None) -> None:
        self.requests: list[Request] = []
        self.script: list[Answer | str] = []
        self.default: Answer | str = default or Answer(200, b"ok")
        self.release = threading.Event()
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def _handle(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                request = Request(self.command, self.path, self.headers, body)
                with receiver.lock:
                    receiver.requests.append(request)
                    answer = receiver.script.pop(0) if receiver.script else receiver.default
                checked = receiver.check(request)
                if checked is not None:
                    answer = checked
                if answer == HANG:
                    receiver.release.wait()
                    return
                assert isinstance(answer, Answer)
                self.send_response(answer.status)
                for name, value in answer.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(answer.body)))
                self.end_headers()
                self.wfile.write(answer.body)

            do_POST = do_PATCH = _handle

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def check(self, request: Request) -> Answer | None:
        return None

    def url(self, path: str = "") -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"


class HubSpot(Receiver):
    """``PATCH /crm/v3/objects/{object}/{id}`` with ``{"properties": {...}}`` and a Bearer token: 200 with the
    object, 401 for another token, 404 for an unknown id (HubSpot's CRM objects API)."""

    def __init__(self, *, token: str, records: set[str]) -> None:
        super().__init__()
        self.token, self.records = token, records

    def check(self, request: Request) -> Answer | None:
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return Answer(401, b'{"status":"error","category":"INVALID_AUTHENTICATION"}')
        found = re.fullmatch(r"/crm/v3/objects/(contacts|leads)/([^/]+)", request.path)
        if request.method != "PATCH" or found is None or found[2] not in self.records:
            return Answer(404, b'{"status":"error","category":"OBJECT_NOT_FOUND"}')
        return None


class Salesforce(Receiver):
    """``PATCH /services/data/vXX.X/sobjects/Lead/{Id}`` with ``{"OwnerId": ...}`` and a Bearer token: 204 No
    Content, 401 for another token, 404 for an unknown Id (Salesforce's REST API)."""

    def __init__(self, *, token: str, records: set[str]) -> None:
        super().__init__(default=Answer(204))
        self.token, self.records = token, records

    def check(self, request: Request) -> Answer | None:
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return Answer(401, b'[{"message":"Session expired or invalid","errorCode":"INVALID_SESSION_ID"}]')
        found = re.fullmatch(r"/services/data/v[0-9]+\.[0-9]/sobjects/Lead/([^/]+)", request.path)
        if request.method != "PATCH" or found is None or found[1] not in self.records:
            return Answer(404, b'[{"errorCode":"NOT_FOUND","message":"The requested resource does not exist"}]')
        return None


@contextlib.contextmanager
def running(receiver: Receiver) -> Iterator[Receiver]:
    """Serve ``receiver`` for the block; a request held open is let go at the end."""
    receiver.thread.start()
    try:
        yield receiver
    finally:
        receiver.release.set()
        receiver.server.shutdown()
        receiver.server.server_close()
