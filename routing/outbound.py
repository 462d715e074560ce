"""Talking to the rest of the stack: signed webhooks out, and the lead's owner written back to the CRM.

Recording. Every change that an outside system may want to hear of records an ``OutboundEvent`` and one
``Delivery`` per receiver in the transaction of the change, through ``events_record``: intake
(``lead.received``), the ownership layer (``lead.assigned``, ``lead.reassigned``, ``lead.closed``) and,
through the same call, the sla app (``lead.touched``, ``sla.breached``, ``escalation.fired``). A batch
records its events in one insert per table. Receivers are webhook subscriptions listening to the event's
type, and for ``lead.assigned``/``lead.reassigned`` the active CRM connectors that know the new owner's CRM
id and find the lead's CRM record id. With no active receiver, recording costs one small query per batch
and writes nothing.

Sending. After commit, ``deliveries_send`` (the ``deliver_events`` task, in the webhooks lane, apart from
routing) sends what is due. Each delivery is claimed by a conditional UPDATE that pushes its next attempt
past the HTTP timeout, so two senders never send it at once and a sender that dies leaves it due again.
A lead's deliveries to one receiver go in order: a later one waits until the earlier is delivered or dead.
Every attempt is logged (``DeliveryAttempt``). A failure (an error, a timeout, any status but 2xx) is
retried with exponential backoff and jitter, after ``Retry-After`` when the receiver sends one (429 or
503), until the event is ``LEADROUTER_WEBHOOK_MAX_AGE_SECONDS`` old: the delivery is then ``dead``, and a
person may resend it from admin. The periodic ``sweep_deliveries`` wakes the sender for retries that came
due.

Retention. The periodic ``prune_deliveries`` deletes, oldest first and a bounded batch per statement, the
events whose every delivery is delivered (or that have none) once ``LEADROUTER_WEBHOOK_RETENTION_DAYS`` old,
and those with a dead delivery once ``LEADROUTER_WEBHOOK_DEAD_RETENTION_DAYS`` old, with their deliveries
and attempt logs. An event with a delivery still pending or retrying (a resend) stays.

Webhook requests carry ``X-LeadRouter-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">``
with the subscription's secret (docs/integrations.md shows how to check it).
"""

from __future__ import annotations

import datetime as dt
import email.utils
import hashlib
import hmac
import json
import logging
import os
import random
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple
from urllib.parse import quote, urlsplit

from celery import current_app
from django.conf import settings
from django.db import connection, transaction
from django.db.models import Exists, F, OuterRef, QuerySet
from django.utils import timezone

from routing.bulk import reads_together, rows_insert
from routing.models import (
    CrmConnector,
    CrmOwner,
    Delivery,
    DeliveryAttempt,
    EventType,
    Lead,
    OutboundEvent,
    Queue,
    WebhookSubscription,
)
from territories.models import Rep

logger = logging.getLogger(__name__)

PAYLOAD_VERSION = 1
SIGNATURE_HEADER = "X-LeadRouter-Signature"
# Longest error text kept on an attempt.
ERROR_MAX_CHARS = 1000
# Response bytes read (and dropped) from a receiver: enough to let it finish, never a flood into memory.
RESPONSE_READ_MAX = 64 * 1024
# Deliveries looked at per round of a sender, and the longest a sender keeps going before handing over to
# a fresh task (below the task's soft time limit).
SEND_ROUND = 100
SEND_BUDGET_SECONDS = 40.0
# Retention (``deliveries_prune``): the most rows one DELETE removes, and the longest one run keeps deleting
# (below the task's soft time limit; what is left waits for the next run).
PRUNE_BATCH = 5000
PRUNE_BUDGET_SECONDS = 30.0
# The events a CRM connector writes back.
OWNER_EVENTS = frozenset({EventType.LEAD_ASSIGNED.value, EventType.LEAD_REASSIGNED.value})
USER_AGENT = "LeadRouter-Webhooks/1"
DELIVERY_COLUMNS = [
    *("event", "subscription", "connector", "target", "lead", "crm_record_id", "crm_owner_id"),
    *("status", "attempts", "next_attempt_at", "created_at", "last_error"),
]


class Event(NamedTuple):
    """One event to record: its type, its lead, and what it adds to the lead (``data`` besides ``lead``).
    ``previous_owner_id``: the rep who owned the lead before (shown as ``data.previous_owner``, a username).
    ``lead``: the lead row as the caller holds it, written as the database now has it (a routing batch's
    leads): the body is built from it instead of reading the lead back. Without it (or with a field of the
    view deferred) the lead is read."""

    type: str
    lead_id: int
    data: Mapping[str, Any] = {}
    previous_owner_id: int | None = None
    lead: Lead | None = None


# --- The lead as the API shows it ------------------------------------------------------------------------

# The lead's columns (attribute names) its view shows; ``raw_payload`` is read only for CRM connectors that
# find the record id in the posted lead.
_VIEW_FIELDS = (
    "id",
    "status",
    "received_at",
    "routed_at",
    "external_id",
    "source",
    "campaign",
    "email",
    "first_name",
    "last_name",
    "company",
    "country",
    "score",
    "owner_id",
    "queue_id",
    "closed_at",
    "close_reason",
)


def api_time(value: dt.datetime | None) -> str | None:
    """A time as the API writes it (ISO 8601, UTC with Z)."""
    if value is None:
        return None
    if value.utcoffset() != dt.timedelta(0):
        value = value.astimezone(dt.UTC)
    return value.replace(tzinfo=None).isoformat() + "Z"


# A rep's username, first and last name.
_RepNames = tuple[str, str, str]


def _lead_view(values: Mapping[str, Any], reps: Mapping[int, _RepNames], queues: Mapping[int, str]) -> dict[str, Any]:
    """The lead as ``GET /api/v1/leads/{id}/`` summarises it (status, owner, queue, ids), with the contact
    fields, from its columns (``values``, by attribute name: a row's ``values()`` or a lead's ``__dict__``)."""
    owner = reps.get(values["owner_id"]) if values["owner_id"] else None
    queue_id = values["queue_id"]
    closed_at = values["closed_at"]
    return {
        "id": values["id"],
        "status": values["status"],
        "created": api_time(values["received_at"]),
        "routed_at": api_time(values["routed_at"]),
        "external_id": values["external_id"] or None,
        "source": values["source"] or None,
        "campaign": values["campaign"] or None,
        "owner": owner[0] if owner else None,
        "owner_name": (" ".join(part for part in owner[1:] if part) or owner[0]) if owner else None,
        "queue": queues.get(queue_id) if queue_id is not None else None,
        "email": values["email"] or None,
        "first_name": values["first_name"] or None,
        "last_name": values["last_name"] or None,
        "company": values["company"] or None,
        "country": values["country"] or None,
        "score": values["score"],
        "closed": {"at": api_time(closed_at), "reason": values["close_reason"]} if closed_at else None,
    }


def _rep_names(rep_ids: set[int]) -> dict[int, _RepNames]:
    if not rep_ids:
        return {}
    return {
        pk: (username, first, last)
        for pk, username, first, last in Rep.objects.filter(pk__in=rep_ids)
        .order_by()
        .values_list("pk", "user__username", "user__first_name", "user__last_name")
    }


def _queue_names(queue_ids: set[int]) -> dict[int, str]:
    if not queue_ids:
        return {}
    return dict(Queue.objects.filter(pk__in=queue_ids).order_by().values_list("pk", "name"))


def _lead_rows(events: Sequence[Event], *, raw_payload: bool) -> dict[int, Mapping[str, Any]]:
    """The view's columns of the events' leads, by id: the lead an event carries when it has them all loaded
    (no query), the others read in one query. A lead deleted in this very transaction is missing."""
    fields = (*_VIEW_FIELDS, "raw_payload") if raw_payload else _VIEW_FIELDS
    needed = set(fields)
    rows: dict[int, Mapping[str, Any]] = {}
    for event in events:
        if event.lead is not None and event.lead_id not in rows:
            loaded = event.lead.__dict__
            if loaded.keys() >= needed:
                rows[event.lead_id] = loaded
    missing = sorted({event.lead_id for event in events} - rows.keys())
    if missing:
        for row in Lead.objects.filter(pk__in=missing).order_by().values(*fields):
            rows[row["id"]] = row
    return rows


# --- Recording -------------------------------------------------------------------------------------------


@dataclass
class Receivers:
    """The active receivers, read once per call: subscriptions by event type, and CRM connectors."""

    subscriptions: dict[str, list[int]] = field(default_factory=dict)
    connectors: list[CrmConnector] = field(default_factory=list)

    def want(self, event_type: str) -> bool:
        """Whether any of them wants events of this type (what ``events_record`` writes)."""
        return bool(self.subscriptions.get(event_type)) or (event_type in OWNER_EVENTS and bool(self.connectors))


def event_receivers(types: set[str]) -> Receivers:
    """The active subscriptions that want these event types, and the active CRM connectors when ``types`` has
    an owner event: what ``events_record`` reads first, for a caller that reads it ahead."""
    return event_receivers_found(types, reads_together(event_receivers_statements(types)))


def event_receivers_statements(types: set[str]) -> list[tuple[str, list[Any]]]:
    """What ``event_receivers`` asks, for a caller that asks it together with its own reads: the active
    subscriptions, then (when ``types`` has an owner event) the active connectors' ids. Every lead posted asks,
    mostly to learn there is none: plain statements, as building and compiling the querysets cost several times
    the statements themselves."""
    quote = transaction.get_connection().ops.quote_name
    meta = WebhookSubscription._meta
    statements: list[tuple[str, list[Any]]] = [
        (
            f"SELECT {quote(meta.pk.column)}, {quote(meta.get_field('events').column)} FROM {quote(meta.db_table)} "
            f"WHERE {quote(meta.get_field('active').column)} = %s ORDER BY 1",
            [True],
        )
    ]
    if types & OWNER_EVENTS:
        connector_meta = CrmConnector._meta
        statements.append(
            (
                f"SELECT {quote(connector_meta.pk.column)} FROM {quote(connector_meta.db_table)} "
                f"WHERE {quote(connector_meta.get_field('active').column)} = %s",
                [True],
            )
        )
    return statements


def event_receivers_found(types: set[str], found: Sequence[Sequence[tuple[Any, ...]]]) -> Receivers:
    """``event_receivers`` from the rows of ``event_receivers_statements``."""
    receivers = Receivers()
    db = transaction.get_connection()
    meta = WebhookSubscription._meta
    events_column = meta.get_field("events").get_col(meta.db_table)
    converters = db.ops.get_db_converters(events_column) + events_column.get_db_converters(db)
    for pk, events in found[0]:
        for convert in converters:
            events = convert(events, events_column, db)
        for event_type in set(events or []) & types:
            receivers.subscriptions.setdefault(event_type, []).append(pk)
    active = [row[0] for row in found[1]] if len(found) > 1 else []
    if active:  # Mostly there is none: the connectors are built only when there are.
        receivers.connectors = list(CrmConnector.objects.filter(pk__in=active, active=True).order_by("pk"))
    return receivers


def _record_id(connector: CrmConnector, row: Mapping[str, Any]) -> str:
    """The lead's record id in the connector's CRM: its external id, or a key of the posted lead."""
    if connector.record_id_field == "external_id":
        value = row["external_id"]
    else:
        raw = row.get("raw_payload")
        value = raw.get(connector.record_id_field) if isinstance(raw, dict) else None
    if isinstance(value, bool) or not isinstance(value, str | int):
        return ""
    return str(value).strip()[:200]


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)


def events_record(
    events: Sequence[Event], *, now: dt.datetime | None = None, receivers: Receivers | None = None
) -> int:
    """Record ``events`` and their deliveries in the caller's transaction; return the deliveries written.

    Only events some active receiver wants are written: with none, this is one query. The lead in an event's
    body is built from the lead the event carries, else read (one query for all); then one query for the
    reps and one for the queues named, one insert for the events and one for the deliveries; the sender is
    enqueued after commit (``deliver_events`` in the webhooks lane; when the broker is down,
    ``sweep_deliveries`` finds them). ``receivers``: read ahead by the caller with ``event_receivers`` for
    (at least) these events' types, in the same transaction.
    """
    if not events:
        return 0
    now = now or timezone.now()
    if receivers is None:
        receivers = event_receivers({event.type for event in events})
    wanted = [event for event in events if receivers.want(event.type)]
    if not wanted:
        return 0
    rows = _lead_rows(
        wanted, raw_payload=any(connector.record_id_field != "external_id" for connector in receivers.connectors)
    )
    owners = {row["owner_id"] for row in rows.values() if row["owner_id"]}
    previous = {event.previous_owner_id for event in wanted if event.previous_owner_id is not None}
    reps = _rep_names(owners | previous)
    queues = _queue_names({row["queue_id"] for row in rows.values() if row["queue_id"] is not None})
    crm_owners: dict[tuple[int, int], str] = {}
    if receivers.connectors and owners:
        crm_owners = {
            (connector_id, rep_id): owner_id
            for connector_id, rep_id, owner_id in CrmOwner.objects.filter(
                connector__in=receivers.connectors, rep_id__in=owners
            ).values_list("connector_id", "rep_id", "owner_id")
        }
    # The body is {"version", "id", "type", "created", "data"} as json.dumps writes it compactly; all but the
    # id and the data are the same for every event of a type, so they are written once.
    after_id = {
        event_type: f'","type":{_dumps(event_type)},"created":{_dumps(api_time(now))},"data":'
        for event_type in {event.type for event in wanted}
    }
    before_id = f'{{"version":{_dumps(PAYLOAD_VERSION)},"id":"'
    pending = Delivery.Status.PENDING.value
    event_rows: list[tuple[Any, ...]] = []
    delivery_rows: list[tuple[Any, ...]] = []
    for event in wanted:
        row = rows.get(event.lead_id)
        if row is None:  # Deleted in this very transaction: nothing left to tell.
            continue
        targets: list[tuple[int | None, int | None, str, str, str]] = [
            (subscription_id, None, f"w{subscription_id}", "", "")
            for subscription_id in receivers.subscriptions.get(event.type, [])
        ]
        owner_rep = row["owner_id"]
        if event.type in OWNER_EVENTS and owner_rep:
            for connector in receivers.connectors:
                owner_id = crm_owners.get((connector.pk, owner_rep))
                record_id = _record_id(connector, row)
                if owner_id and record_id:
                    targets.append((None, connector.pk, f"c{connector.pk}", record_id, owner_id))
        if not targets:
            continue
        event_id = uuid.uuid4()
        data = {"lead": _lead_view(row, reps, queues), **event.data, **_previous(event, reps)}
        body = f"{before_id}{event_id}{after_id[event.type]}{_dumps(data)}}}"
        event_rows.append((event_id, event.type, event.lead_id, body, now))
        delivery_rows.extend(
            (event_id, subscription, connector, target, event.lead_id, record, owner, pending, 0, now, now, "")
            for subscription, connector, target, record, owner in targets
        )
    if not delivery_rows:
        return 0
    rows_insert(OutboundEvent, event_rows, ["id", "type", "lead", "body", "created_at"])
    rows_insert(Delivery, delivery_rows, DELIVERY_COLUMNS)
    transaction.on_commit(_enqueue_sender)
    return len(delivery_rows)


def _previous(event: Event, reps: Mapping[int, _RepNames]) -> dict[str, Any]:
    if event.previous_owner_id is None:
        return {}
    names = reps.get(event.previous_owner_id)
    return {"previous_owner": names[0] if names else None}


def deliveries_enqueue() -> None:
    """Send the ``deliver_events`` task to the webhooks queue, by name (the tasks module imports this one).
    Raises what the broker raises."""
    current_app.send_task("routing.tasks.deliver_events", queue=settings.LEADROUTER_QUEUE_WEBHOOKS)


def _enqueue_sender() -> None:
    try:
        deliveries_enqueue()
    except Exception:  # The broker is down: the deliveries stay due for the sweep.
        logger.exception("Could not enqueue the event sender; the delivery sweep will send them.")


# --- Signing ---------------------------------------------------------------------------------------------


def signature(secret: str, body: bytes, *, timestamp: int) -> str:
    """The ``X-LeadRouter-Signature`` header value for ``body`` sent at ``timestamp`` (unix seconds)."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def signature_verify(secret: str, body: bytes, header: str, *, now: float | None = None, tolerance: int = 300) -> bool:
    """Whether ``header`` signs ``body`` with ``secret`` and is at most ``tolerance`` seconds old: what a receiver
    checks (docs/integrations.md has the same in a few lines)."""
    try:
        parts = dict(part.split("=", 1) for part in header.split(","))
        timestamp = int(parts["t"])
    except (KeyError, ValueError):
        return False
    if abs((time.time() if now is None else now) - timestamp) > tolerance:
        return False
    expected = signature(secret, body, timestamp=timestamp).split("v1=", 1)[1]
    return hmac.compare_digest(expected, parts.get("v1", ""))


# --- Sending ---------------------------------------------------------------------------------------------


@dataclass
class _Outcome:
    code: int | None = None
    error: str = ""
    retry_after: float | None = None

    @property
    def ok(self) -> bool:
        return self.code is not None and 200 <= self.code < 300 and not self.error


@dataclass
class SendReport:
    delivered: int = 0
    failed: int = 0
    dead: int = 0


def _due(now: dt.datetime) -> Any:
    """Deliveries due now whose lead has no earlier undone delivery to the same receiver, oldest first."""
    earlier = Delivery.objects.filter(
        target=OuterRef("target"), lead_id=OuterRef("lead_id"), status__in=Delivery.UNDONE, pk__lt=OuterRef("pk")
    )
    return (
        Delivery.objects.filter(status__in=Delivery.UNDONE, next_attempt_at__lte=now)
        .exclude(Exists(earlier))
        .order_by("pk")
    )


def deliveries_due(*, now: dt.datetime | None = None) -> bool:
    """Whether anything is due to be sent (the sweep's one cheap question)."""
    return _due(now or timezone.now()).exists()


def deliveries_send(*, budget_seconds: float = SEND_BUDGET_SECONDS) -> SendReport:
    """Send what is due, round after round (a delivered event lets its lead's next one go), until nothing is
    due or ``budget_seconds`` passed; then enqueue a fresh sender if work is left. A receiver that failed is
    not tried again in the same call, so one slow receiver costs each call one timeout, not one per event.

    Call outside a transaction: each claim and outcome commits at once."""
    report = SendReport()
    started = time.monotonic()
    failed_targets: set[str] = set()
    while time.monotonic() - started < budget_seconds:
        now = timezone.now()
        batch = list(
            _due(now)
            .exclude(target__in=failed_targets)
            .select_related("event", "subscription", "connector")[:SEND_ROUND]
        )
        if not batch:
            return report
        progressed = False
        for delivery in batch:
            if delivery.target in failed_targets or time.monotonic() - started >= budget_seconds:
                continue
            if not _claim(delivery):
                continue
            progressed = True
            if not _attempt(delivery, report):
                failed_targets.add(delivery.target)
        if not progressed:
            return report
    _enqueue_sender()
    return report


def _claim(delivery: Delivery) -> bool:
    """Take the delivery for one attempt: its next attempt moves past the HTTP timeout, so nobody else sends
    it meanwhile, and it is due again if this sender dies. False when someone else took it first."""
    now = timezone.now()
    lease = dt.timedelta(seconds=settings.LEADROUTER_WEBHOOK_TIMEOUT_SECONDS + 30)
    claimed = Delivery.objects.filter(
        pk=delivery.pk, status__in=Delivery.UNDONE, next_attempt_at=delivery.next_attempt_at
    ).update(next_attempt_at=now + lease, attempts=F("attempts") + 1)
    delivery.attempts += 1
    return bool(claimed)


def _attempt(delivery: Delivery, report: SendReport) -> bool:
    """One HTTP request for the delivery, logged; the delivery is then delivered, retrying or dead."""
    at = timezone.now()
    started = time.monotonic()
    try:
        outcome = _request(delivery)
    except Exception as exc:  # A bug in building the request must not stop the other deliveries.
        logger.exception("Delivery %s could not be sent.", delivery.pk)
        outcome = _Outcome(error=f"{exc.__class__.__name__}: {exc}")
    duration_ms = int((time.monotonic() - started) * 1000)
    error = outcome.error[:ERROR_MAX_CHARS]
    DeliveryAttempt.objects.create(
        delivery=delivery, at=at, duration_ms=duration_ms, response_code=outcome.code, error=error
    )
    now = timezone.now()
    fields: dict[str, Any] = {"last_response_code": outcome.code, "last_error": error}
    if outcome.ok:
        fields.update(status=Delivery.Status.DELIVERED, delivered_at=now, next_attempt_at=now)
        report.delivered += 1
    else:
        next_at = now + dt.timedelta(seconds=_backoff(delivery.attempts, outcome.retry_after))
        if next_at > delivery.event.created_at + dt.timedelta(seconds=settings.LEADROUTER_WEBHOOK_MAX_AGE_SECONDS):
            fields.update(status=Delivery.Status.DEAD, next_attempt_at=now)
            report.dead += 1
            logger.warning("Delivery %s is dead after %d attempts: %s", delivery.pk, delivery.attempts, error)
        else:
            fields.update(status=Delivery.Status.RETRYING, next_attempt_at=next_at)
            report.failed += 1
    Delivery.objects.filter(pk=delivery.pk).update(**fields)
    return outcome.ok


def _backoff(attempts: int, retry_after: float | None) -> float:
    """Seconds until the next attempt: what the receiver asked for, else base × 2^(attempts-1), capped, with
    jitter (between half and all of it) so that many failed deliveries do not come back at once."""
    if retry_after is not None:
        return min(max(retry_after, 0.0), settings.LEADROUTER_WEBHOOK_RETRY_MAX_SECONDS)
    delay = min(
        settings.LEADROUTER_WEBHOOK_RETRY_BASE_SECONDS * 2 ** max(attempts - 1, 0),
        settings.LEADROUTER_WEBHOOK_RETRY_MAX_SECONDS,
    )
    return delay * random.uniform(0.5, 1.0)


def retry_after_seconds(value: str | None, *, now: dt.datetime | None = None) -> float | None:
    """A ``Retry-After`` header in seconds: a number of seconds or an HTTP date; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return max((when - (now or timezone.now())).total_seconds(), 0.0)


def _request(delivery: Delivery) -> _Outcome:
    """Build and send the delivery's HTTP request: the signed event to a subscription, the owner to a CRM."""
    headers = {"User-Agent": USER_AGENT, "Content-Type": "application/json"}
    if delivery.subscription is not None:
        subscription = delivery.subscription
        body = delivery.event.body.encode()
        headers[SIGNATURE_HEADER] = signature(subscription.secret, body, timestamp=int(time.time()))
        headers["X-LeadRouter-Event"] = delivery.event.type
        headers["X-LeadRouter-Delivery"] = str(delivery.pk)
        return _http("POST", subscription.url, body, headers)
    connector = delivery.connector
    assert connector is not None
    token = os.environ.get(connector.token_env, "")
    if not token:
        return _Outcome(error=f"The environment variable {connector.token_env} (the API token) is not set.")
    headers["Authorization"] = f"Bearer {token}"
    record = quote(delivery.crm_record_id, safe="")
    if connector.kind == CrmConnector.Kind.HUBSPOT:
        url = f"{connector.api_base}/crm/v3/objects/{quote(connector.hubspot_object, safe='')}/{record}"
        payload: dict[str, Any] = {"properties": {"hubspot_owner_id": delivery.crm_owner_id}}
    else:
        url = f"{connector.api_base}/services/data/{connector.salesforce_api_version}/sobjects/Lead/{record}"
        payload = {"OwnerId": delivery.crm_owner_id}
    return _http("PATCH", url, json.dumps(payload).encode(), headers)


def _http(method: str, url: str, body: bytes, headers: dict[str, str]) -> _Outcome:
    if urlsplit(url).scheme not in ("http", "https"):
        return _Outcome(error="Only http(s) URLs are called.")
    request = urllib.request.Request(url, data=body, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=settings.LEADROUTER_WEBHOOK_TIMEOUT_SECONDS) as response:
            response.read(RESPONSE_READ_MAX)
            return _Outcome(code=response.status)
    except urllib.error.HTTPError as exc:
        detail = exc.read(500).decode(errors="replace") if exc.fp is not None else ""
        return _Outcome(
            code=exc.code,
            error=f"HTTP {exc.code}" + (f": {detail}" if detail else ""),
            retry_after=retry_after_seconds(exc.headers.get("Retry-After")) if exc.headers else None,
        )
    except (urllib.error.URLError, OSError) as exc:
        reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
        return _Outcome(error=f"{urlsplit(url).hostname}: {reason or exc.__class__.__name__}")


def deliveries_resend(delivery_ids: Sequence[int]) -> int:
    """Put these deliveries back in line now (admin's resend): a dead one gets one more attempt, a delivered
    one is sent again. Returns how many."""
    now = timezone.now()
    count = Delivery.objects.filter(pk__in=list(delivery_ids)).update(
        status=Delivery.Status.PENDING, next_attempt_at=now
    )
    if count:
        transaction.on_commit(_enqueue_sender)
    return count


# --- Retention -------------------------------------------------------------------------------------------


@dataclass
class PruneReport:
    events: int = 0
    deliveries: int = 0
    attempts: int = 0
    done: bool = True  # False: the time budget ran out with old events left for the next run.


_DONE = (Delivery.Status.DELIVERED.value, Delivery.Status.DEAD.value)


def _prunable(now: dt.datetime) -> list[QuerySet[OutboundEvent]]:
    """Events past their retention with nothing left to send, in two sets that each read as an index range on
    ``created_at`` and an anti-join on the deliveries: older than the dead retention with no delivery pending or
    retrying; older than the retention with every delivery delivered (or none). (The dead retention is never
    shorter than the retention, so an event with a dead delivery is only in the first.)"""
    kept = now - dt.timedelta(days=settings.LEADROUTER_WEBHOOK_RETENTION_DAYS)
    dead_kept = now - dt.timedelta(days=settings.LEADROUTER_WEBHOOK_DEAD_RETENTION_DAYS)
    undone = Delivery.objects.filter(event=OuterRef("pk"), status__in=Delivery.UNDONE)
    not_delivered = Delivery.objects.filter(event=OuterRef("pk")).exclude(status=Delivery.Status.DELIVERED)
    return [
        OutboundEvent.objects.filter(~Exists(undone), created_at__lt=dead_kept),
        OutboundEvent.objects.filter(~Exists(not_delivered), created_at__lt=kept),
    ]


def _delete_bounded(queryset: QuerySet[Any], limit: int) -> int:
    """Delete at most ``limit`` rows of ``queryset`` in one ``DELETE … WHERE pk IN (SELECT pk … LIMIT n)``
    statement (no rows fetched, no cascade collected: the caller deletes the children first); the count."""
    model = queryset.model
    pk = model._meta.pk
    assert pk is not None
    sql, params = queryset.order_by().values("pk")[:limit].query.sql_with_params()
    quote = connection.ops.quote_name
    with connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {quote(model._meta.db_table)} WHERE {quote(pk.column)} IN ({sql})", params)
        return max(cursor.rowcount, 0)


def _delete_all(queryset: QuerySet[Any], limit: int) -> int:
    total = 0
    while deleted := _delete_bounded(queryset, limit):
        total += deleted
    return total


def deliveries_prune(
    *, now: dt.datetime | None = None, batch: int = PRUNE_BATCH, budget_seconds: float = PRUNE_BUDGET_SECONDS
) -> PruneReport:
    """Delete the events past their retention (``_prunable``), oldest first, with their deliveries and
    attempt logs: ``batch`` events at a time, each DELETE removing at most ``batch`` rows, until none is left
    or ``budget_seconds`` passed. Each batch commits on its own; one cut short is finished by the next run.
    A delivery resent meanwhile (pending again) keeps its event."""
    now = now or timezone.now()
    report = PruneReport()
    started = time.monotonic()
    for prunable in _prunable(now):
        while True:
            if time.monotonic() - started >= budget_seconds:
                report.done = False
                return report
            with transaction.atomic():
                event_ids = list(prunable.order_by("created_at").values_list("pk", flat=True)[:batch])
                if not event_ids:
                    break
                finished = Delivery.objects.filter(event_id__in=event_ids, status__in=_DONE)
                report.attempts += _delete_all(
                    DeliveryAttempt.objects.filter(delivery__event_id__in=event_ids, delivery__status__in=_DONE),
                    batch,
                )
                report.deliveries += _delete_all(finished, batch)
                report.events += _delete_bounded(
                    OutboundEvent.objects.filter(pk__in=event_ids).exclude(
                        Exists(Delivery.objects.filter(event=OuterRef("pk")))
                    ),
                    batch,
                )
    return report
