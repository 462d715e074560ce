"""The notification outbox: tell the rep about a new lead (an e-mail, an optional Slack post and an in-app
task), and send the notices other apps plan, such as the SLA ladder's reminders and manager alerts.

The routing service calls ``notifications_plan`` inside its transaction and
bulk-creates what it returns; after commit, the ``notify_assignments`` task calls
``notifications_send``. Another app records its notices with ``notices_record`` in
the transaction that decided them and sends them after commit with
``notices_send_after_commit`` (the ``notify_outbox`` task); it says how each of its
kinds is rendered with ``notice_kind_register``, called from its ``AppConfig.ready``,
so routing never imports it. The Notification rows are the outbox: each is claimed
by a conditional UPDATE before it is sent, so it goes out at most once however many
tasks run. The periodic ``notifications_sweep`` sends what a lost message left
pending, retries failures, and deals with notices a dead worker left ``sending``,
whatever their kind. What a message shows of the lead's stored JSON goes through
``routing.render``, which bounds it, so no stored lead can keep its rep from being
told.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.conf import settings
from django.core.mail import EmailMultiAlternatives, get_connection
from django.core.mail.backends.base import BaseEmailBackend
from django.db import connection, transaction
from django.db.models import Q
from django.template.loader import render_to_string
from django.utils import timezone

from routing import lanes
from routing.bulk import rows_insert
from routing.models import Assignment, Lead, Notification, RepTask
from routing.ownership import assignment_notice_kinds, follow_up_title
from routing.render import (
    form_answer_pairs,
    how_it_became_theirs,
    inline_text,
    lead_label,
    lead_name,
    one_line,
    page_history_lines,
    safe_text,
)
from routing.rows import RowSelect, rows_by_pk, rows_select, sql_ids_in
from territories.models import Rep

logger = logging.getLogger(__name__)

# Longest error text kept on a failed notification.
ERROR_MAX_CHARS = 1000
# The longest e-mail body and Slack text sent; the form answers and page history are bounded well below.
EMAIL_MAX_CHARS = 500_000
SLACK_MAX_CHARS = 3_000
# Attempts (the first send included) before a failing notification is left for a person to resend.
MAX_ATTEMPTS = 3
# Notifications claimed, and marked sent, per statement. A worker killed mid-send leaves at most this many
# ``sending`` (see below); a thousand-lead batch's two thousand notices take 160 statements instead of 4,000.
CLAIM_CHUNK = 25
# The channels whose notice is sent again when a worker died while sending it (the row is still
# ``sending`` after LEADROUTER_NOTIFICATION_SENDING_TIMEOUT_SECONDS). E-mail is: a second send delivers at
# worst a second copy, and both copies carry the same Message-ID, which many mailboxes fold into one. Slack
# is not: an incoming webhook has no idempotency key, so a retry posts a second visible message to the rep's
# or the whole queue's channel. Such a notice becomes "delivery unknown" instead; the routing health page
# and admin list it with a resend action, and the rep's in-app task and the SLA ladder still remind the rep.
# A kind travels on the channel it was registered with (``notice_kind_register``).
RETRY_WHEN_STUCK = frozenset({Notification.Kind.EMAIL})
STUCK_RETRY_NOTE = "The worker sending it stopped before recording the outcome; sent again."
STUCK_UNKNOWN_NOTE = (
    "The worker sending it stopped before recording the outcome, so whether it arrived is unknown. "
    "Resend it from routing health or admin if the rep has not seen it."
)


def undelivered() -> Q:
    """The notifications no one will send again on their own: delivery unknown, or failed ``MAX_ATTEMPTS``
    times. The routing health page and the admin filter list these, for a person to resend."""
    return Q(status=Notification.Status.UNKNOWN) | Q(status=Notification.Status.FAILED, attempts__gte=MAX_ATTEMPTS)


class DeliveryError(Exception):
    """A notification could not be delivered; the message is stored on the row."""


# --- Kinds and how they are rendered ---------------------------------------------------------------------


@dataclass(frozen=True)
class Email:
    """An e-mail to send: plain text, optionally an HTML alternative. The subject is put on one line."""

    subject: str
    body: str
    to: list[str]
    html: str = ""


@dataclass(frozen=True)
class SlackPost:
    """A Slack message, in mrkdwn, to post to each incoming-webhook URL."""

    urls: list[str]
    text: str


Message = Email | SlackPost
# A kind's renderer: given the pending notices of that kind about to be sent (so that it can read what their
# messages show in bulk), a function that builds one notice's message. That function raises DeliveryError
# when a notice cannot be sent (no address, no webhook); the notice then fails, and the others go out.
Renderer = Callable[[Sequence[Notification]], Callable[[Notification], Message]]


@dataclass(frozen=True)
class NoticeKind:
    """How one kind of notification is sent: its channel (e-mail or Slack, which decides whether a notice a
    dead worker left ``sending`` is sent again) and its renderer."""

    channel: str
    render: Renderer


_notice_kinds: dict[str, NoticeKind] = {}


def notice_kind_register(kind: str, *, channel: str, render: Renderer) -> None:
    """Say how notices of ``kind`` (a ``Notification.Kind``) are rendered. The apps above routing call this
    from ``AppConfig.ready``; routing registers its own kinds below."""
    if kind not in Notification.Kind.values:
        raise ValueError(f"{kind!r} is not a Notification.Kind.")
    if channel not in (Notification.Kind.EMAIL, Notification.Kind.SLACK):
        raise ValueError(f"A notice travels by e-mail or Slack, not {channel!r}.")
    _notice_kinds[kind] = NoticeKind(channel=channel, render=render)


def notice_kinds() -> dict[str, NoticeKind]:
    """Every registered kind, for checks that no kind is left without a renderer."""
    return dict(_notice_kinds)


def _retry_when_stuck_kinds() -> list[str]:
    return sorted(kind for kind, spec in _notice_kinds.items() if spec.channel in RETRY_WHEN_STUCK)


# --- Planning --------------------------------------------------------------------------------------------


def notifications_plan(*, assignment: Assignment) -> tuple[list[Notification], RepTask]:
    """The notifications and the task for one assignment, unsaved, by the same rules the ownership layer
    applies set-based to every new owner (``routing.ownership``).

    The caller bulk-creates them in its own transaction. Reads only
    ``assignment.lead``, ``assignment.rep`` (with ``rep.user``) and
    ``assignment.queue``, which the caller has loaded, so it runs no query of its
    own.

    1. An e-mail notification when the rep's user has an e-mail address.
    2. One Slack notification when the rep or the queue has a webhook URL; it
       posts to each configured URL.
    3. A task "Follow up: <lead>" due ``LEADROUTER_FIRST_TOUCH_MINUTES`` after
       the assignment.
    """
    rep = assignment.rep
    if rep is None:
        raise ValueError("Only an assignment to a rep can be notified; this one has no rep.")
    lead = assignment.lead
    queue = assignment.queue if assignment.queue_id is not None else None
    kinds = assignment_notice_kinds(
        rep_email=rep.user.email,
        rep_webhook=rep.slack_webhook_url,
        queue_webhook=queue.slack_webhook_url if queue is not None else "",
    )
    notifications = [Notification(assignment=assignment, lead=lead, rep=rep, kind=kind) for kind in kinds]
    task = RepTask(
        assignment=assignment, lead=lead, rep=rep, title=follow_up_title(lead), due_at=_first_touch_due(assignment)
    )
    return notifications, task


def slack_webhook_urls(*, assignment: Assignment) -> list[str]:
    """The rep's webhook, then the queue's, without repeats."""
    urls = [assignment.rep.slack_webhook_url if assignment.rep else ""]
    if assignment.queue_id is not None and assignment.queue is not None:
        urls.append(assignment.queue.slack_webhook_url)
    return list(dict.fromkeys(url for url in urls if url))


class Notice(NamedTuple):
    """A notice another app planned, about one of its records rather than an assignment: the SLA ladder's
    reminder or alert about an escalation (by id). ``recipients``: addresses instead of the rep's own."""

    escalation_id: int
    lead_id: int
    rep_id: int
    kind: str
    recipients: list[str] | None = None


NOTICE_COLUMNS = ["escalation_id", "lead", "rep", "kind", "recipients", "status", "attempts", "error", "created_at"]


def notices_record(notices: Sequence[Notice], *, now: dt.datetime) -> list[int]:
    """Store ``notices`` as pending outbox rows, in one statement; return their ids in order.

    Call it in the transaction that records what they report, and send them after commit with
    ``notices_send_after_commit``. Side effects: inserts Notification rows.
    """
    pending = Notification.Status.PENDING.value
    rows = [(*notice, pending, 0, "", now) for notice in notices]
    return rows_insert(Notification, rows, NOTICE_COLUMNS, returning_pk=True)


def notices_send_after_commit(notification_ids: Sequence[int]) -> None:
    """Enqueue one ``notify_outbox`` task for these notifications once the transaction commits (the notify
    lane). When the broker is down they stay pending, and the notification sweep sends them within a minute."""
    if not notification_ids:
        return
    ids = list(notification_ids)

    def enqueue() -> None:
        try:
            lanes.notify_outbox_send(ids)
        except Exception:  # The broker is down: the notifications stay pending for the sweep.
            logger.exception("Could not enqueue %d notifications.", len(ids))

    transaction.on_commit(enqueue)


# --- Sending ---------------------------------------------------------------------------------------------


def notifications_send(*, assignment_ids: Sequence[int] = (), notification_ids: Sequence[int] = ()) -> int:
    """Send the pending notifications of these assignments, and these pending notifications by id; return
    how many went out.

    1. Load the pending notifications with everything the message shows, and
       let each kind's renderer read what its messages need, once for all.
    2. Claim them ``CLAIM_CHUNK`` at a time with one ``UPDATE … SET
       status='sending', attempts=attempts+1 WHERE status='pending' AND id IN
       (…) RETURNING id``. Only the caller whose UPDATE changed a row sends it,
       so two tasks running at once, or one task running twice, never send a
       notification twice.
    3. Build each claimed message and send it; mark the chunk's sent ones
       ``sent`` (with ``sent_at``) in one statement, and each failure ``failed``
       (with the error, truncated) at once. A failure affects only its own
       notification: a bad Slack webhook does not stop the e-mail. The e-mails
       of one call share one connection to the mail server.

    A notification left in ``sending`` (a worker killed between the claim and the
    outcome: at most one chunk's) is not sent again here: ``notifications_recover_stuck`` decides,
    after a timeout, whether its channel allows a retry.

    Side effects: sends e-mail through Django's mail backend, POSTs to Slack
    webhooks, and updates Notification rows. Call it outside a transaction (as the
    task does) so that each claim and outcome is committed as soon as it is made.
    """
    notifications = _pending(assignment_ids=assignment_ids, notification_ids=notification_ids)
    if not notifications:
        return 0
    builders = _message_builders(notifications)
    mailer = _Mailer()
    sent = 0
    try:
        for start in range(0, len(notifications), CLAIM_CHUNK):
            chunk = notifications[start : start + CLAIM_CHUNK]
            claimed = _claim(chunk)
            delivered: list[int] = []
            for notification in chunk:
                if notification.pk not in claimed:
                    continue
                try:
                    _deliver(notification, builders[notification.kind](notification), mailer)
                except Exception as exc:
                    # Any failure, expected (HTTP, SMTP) or not (a template bug), is recorded on the row
                    # and must not keep the other notifications from going out.
                    logger.warning(
                        "Notification %s (%s) failed: %s", notification.pk, notification.kind, exc, exc_info=True
                    )
                    Notification.objects.filter(pk=notification.pk, status=Notification.Status.SENDING).update(
                        status=Notification.Status.FAILED, error=_error_text(exc)
                    )
                else:
                    delivered.append(notification.pk)
            if delivered:
                sent += _mark_sent(delivered)
    finally:
        mailer.close()
    return sent


def notifications_retry_failed(*, max_attempts: int = MAX_ATTEMPTS) -> list[int]:
    """Put failed notifications with fewer than ``max_attempts`` attempts back to
    ``pending``; return the ids of their assignments, for ``notify_assignments``
    (a notice about an escalation has none: ``notifications_sweep`` sends it by id).

    A Slack notification that reached one of two webhooks before failing posts to
    both again on retry.
    """
    return _assignment_ids(_retry_failed(max_attempts=max_attempts))


def _retry_failed(*, max_attempts: int) -> Sequence[tuple[int, int | None]]:
    """``notifications_retry_failed``, returning (id, assignment id) of each notification put back."""
    failed = list(
        Notification.objects.filter(status=Notification.Status.FAILED, attempts__lt=max_attempts).values_list(
            "pk", "assignment_id"
        )
    )
    if failed:
        Notification.objects.filter(pk__in=[pk for pk, _ in failed], status=Notification.Status.FAILED).update(
            status=Notification.Status.PENDING
        )
    return failed


def notifications_recover_stuck(
    *, older_than_seconds: float, max_attempts: int = MAX_ATTEMPTS, now: dt.datetime | None = None
) -> list[int]:
    """Deal with notifications left ``sending`` for longer than ``older_than_seconds``: the worker sending
    them died between the claim and the outcome, so whether they arrived is unknown.

    1. Those of a channel in ``RETRY_WHEN_STUCK`` (e-mail) with attempts left go back to ``pending``; their
       assignment ids are returned, for ``notifications_send`` (``notifications_sweep`` sends a notice about
       an escalation, which has none, by id).
    2. The others (Slack, or e-mail out of attempts) become ``unknown``: shown on the routing health page and
       in admin, where a person can resend them.

    Each change is a conditional UPDATE on rows still ``sending`` since before the cutoff, so a sender that
    records its outcome meanwhile wins. Rows claimed before ``sending_since`` existed count as stale.
    """
    return _assignment_ids(
        _recover_stuck(older_than_seconds=older_than_seconds, max_attempts=max_attempts, now=now or timezone.now())
    )


def _recover_stuck(
    *, older_than_seconds: float, max_attempts: int, now: dt.datetime
) -> Sequence[tuple[int, int | None]]:
    """``notifications_recover_stuck``, returning (id, assignment id) of each notification put back."""
    cutoff = now - dt.timedelta(seconds=older_than_seconds)
    stale = Q(status=Notification.Status.SENDING) & (Q(sending_since__lt=cutoff) | Q(sending_since__isnull=True))
    retry = list(
        Notification.objects.filter(stale, kind__in=_retry_when_stuck_kinds(), attempts__lt=max_attempts).values_list(
            "pk", "assignment_id"
        )
    )
    if retry:
        Notification.objects.filter(stale, pk__in=[pk for pk, _ in retry]).update(
            status=Notification.Status.PENDING, error=STUCK_RETRY_NOTE
        )
    unknown = Notification.objects.filter(stale).update(status=Notification.Status.UNKNOWN, error=STUCK_UNKNOWN_NOTE)
    if retry or unknown:
        logger.warning(
            "Notifications left sending by a stopped worker: %d sent again, %d marked delivery unknown.",
            len(retry),
            unknown,
        )
    return retry


def _assignment_ids(rows: Sequence[tuple[int, int | None]]) -> list[int]:
    return sorted({assignment_id for _, assignment_id in rows if assignment_id is not None})


def notifications_resend(*, notification_ids: list[int], by: Any = None) -> int:
    """Send these notifications again, if their delivery is unknown or they failed; return how many.

    Puts each back to ``pending`` with a conditional UPDATE (a notice that is pending, sending or sent is left
    alone, so resending never doubles a notice that is on its way or arrived), then enqueues
    ``notify_assignments`` (notices about an assignment) and ``notify_outbox`` (the others, by id) after
    commit. When the broker is down the rows stay pending and the sweep sends them within a minute.
    """
    with transaction.atomic():
        rows = list(
            Notification.objects.select_for_update()
            .filter(pk__in=notification_ids, status__in=[Notification.Status.UNKNOWN, Notification.Status.FAILED])
            .values_list("pk", "assignment_id")
        )
        if not rows:
            return 0
        Notification.objects.filter(
            pk__in=[pk for pk, _ in rows], status__in=[Notification.Status.UNKNOWN, Notification.Status.FAILED]
        ).update(status=Notification.Status.PENDING)
        assignment_ids = _assignment_ids(rows)
        by_id = sorted(pk for pk, assignment_id in rows if assignment_id is None)
        logger.info("%s resent notifications %s.", by or "Someone", [pk for pk, _ in rows])

        def enqueue() -> None:
            try:
                if assignment_ids:
                    lanes.notify_assignments_send(assignment_ids)
                if by_id:
                    lanes.notify_outbox_send(by_id)
            except Exception:  # The broker is down: the notifications stay pending for the sweep.
                logger.exception("Could not enqueue %d resent notifications.", len(rows))

        transaction.on_commit(enqueue)
    return len(rows)


# --- Reading what the messages show ---------------------------------------------------------------------
#
# The pending notifications and the rows their messages show are read with four plain statements of one to
# four tables each (routing/rows.py), their SQL built once per process. The six-way ``select_related``
# queryset they replace cost about 2 ms of CPU to build and compile on every call, more than half of a
# one-lead send, and its ten-table join took PostgreSQL about 1 ms to plan (these four: about 0.3 ms). Each
# row still becomes a model instance with all its columns, converted as the ORM converts them, so a kind's
# renderer reads them as before.


_NOTIFICATIONS = RowSelect(Notification)
_ASSIGNMENTS = RowSelect(Assignment, ("queue", "task", "assigned_by"))
_LEADS = RowSelect(Lead, ("account", "rule"))
_REPS = RowSelect(Rep, ("user",))


def _pending(*, assignment_ids: Sequence[int], notification_ids: Sequence[int]) -> list[Notification]:
    """The pending notifications of these assignments and with these ids, in the order they are sent, each
    with its lead (with account and rule), its rep (with user) and its assignment (with queue, task and the
    user who assigned it; its lead and rep are the notification's own instances when they are the same rows).

    A notification whose lead or rep row is gone is left out, as the inner join of ``select_related`` left it.
    """
    wanted = []
    params: list[Any] = [Notification.Status.PENDING.value]
    if notification_ids:
        among, ids = sql_ids_in("t0.id", notification_ids)
        wanted.append(among)
        params.extend(ids)
    if assignment_ids:
        among, ids = sql_ids_in("t0.assignment_id", assignment_ids)
        wanted.append(among)
        params.extend(ids)
    if not wanted:
        return []
    notifications: list[Notification] = rows_select(
        _NOTIFICATIONS, f"t0.status = %s AND ({' OR '.join(wanted)}) ORDER BY t0.assignment_id, t0.id", params
    )
    if not notifications:
        return []
    assignments = rows_by_pk(_ASSIGNMENTS, {n.assignment_id for n in notifications if n.assignment_id is not None})
    leads = rows_by_pk(_LEADS, {n.lead_id for n in notifications} | {a.lead_id for a in assignments.values()})
    reps = rows_by_pk(
        _REPS, {n.rep_id for n in notifications} | {a.rep_id for a in assignments.values() if a.rep_id is not None}
    )
    lead_field, rep_field = Notification._meta.get_field("lead"), Notification._meta.get_field("rep")
    assignment_field = Notification._meta.get_field("assignment")
    assignment_lead, assignment_rep = Assignment._meta.get_field("lead"), Assignment._meta.get_field("rep")
    for assignment in assignments.values():
        if assignment.lead_id in leads:
            assignment_lead.set_cached_value(assignment, leads[assignment.lead_id])
        if assignment.rep_id in reps:
            assignment_rep.set_cached_value(assignment, reps[assignment.rep_id])
    loaded = []
    for notification in notifications:
        if notification.lead_id not in leads or notification.rep_id not in reps:
            continue
        lead_field.set_cached_value(notification, leads[notification.lead_id])
        rep_field.set_cached_value(notification, reps[notification.rep_id])
        assignment_id = notification.assignment_id
        assignment_field.set_cached_value(
            notification, assignments.get(assignment_id) if assignment_id is not None else None
        )
        loaded.append(notification)
    return loaded


def _mark_sent(pks: Sequence[int]) -> int:
    """Mark these notifications ``sent`` (those still ``sending``), in one statement; return how many."""
    table = connection.ops.quote_name(Notification._meta.db_table)
    among, ids = sql_ids_in("id", pks)
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} SET status = %s, sent_at = %s, error = %s WHERE status = %s AND {among}",
            [
                Notification.Status.SENT,
                connection.ops.adapt_datetimefield_value(timezone.now()),
                "",
                Notification.Status.SENDING,
                *ids,
            ],
        )
        return cursor.rowcount


def _claim(notifications: Sequence[Notification]) -> set[int]:
    """Claim these notifications for sending, in one statement: the ids of those that were still
    ``pending`` (``UPDATE … WHERE status = 'pending' RETURNING id``: of two senders, only one gets each)."""
    if not notifications:
        return set()
    table = connection.ops.quote_name(Notification._meta.db_table)
    among, ids = sql_ids_in("id", (notification.pk for notification in notifications))
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} SET status = %s, attempts = attempts + 1, sending_since = %s "
            f"WHERE status = %s AND {among} RETURNING id",
            [
                Notification.Status.SENDING,
                connection.ops.adapt_datetimefield_value(timezone.now()),
                Notification.Status.PENDING,
                *ids,
            ],
        )
        return {row[0] for row in cursor.fetchall()}


def _message_builders(notifications: list[Notification]) -> dict[str, Callable[[Notification], Message]]:
    """Each kind's message builder for these notifications: its renderer's, or one that fails every notice of
    the kind with the reason it cannot be rendered (no renderer registered, or the renderer failed)."""
    by_kind: dict[str, list[Notification]] = {}
    for notification in notifications:
        by_kind.setdefault(notification.kind, []).append(notification)
    builders: dict[str, Callable[[Notification], Message]] = {}
    for kind, group in by_kind.items():
        spec = _notice_kinds.get(kind)
        try:
            if spec is None:
                raise DeliveryError(f"Unknown notification kind {kind!r}: nothing registered renders it.")
            builders[kind] = spec.render(group)
        except Exception as exc:
            logger.warning("Notifications of kind %s cannot be rendered: %s", kind, exc, exc_info=True)
            builders[kind] = _failing(exc)
    return builders


def _failing(exc: Exception) -> Callable[[Notification], Message]:
    def build(notification: Notification) -> Message:
        raise exc

    return build


@dataclass
class _Mailer:
    """One connection to the mail server for a whole send, opened with the first e-mail; an e-mail that
    fails closes it, so the next one starts on a fresh connection."""

    backend: BaseEmailBackend | None = field(default=None)

    def connection(self) -> BaseEmailBackend:
        if self.backend is None:
            backend = get_connection(fail_silently=False)
            backend.open()
            self.backend = backend
        return self.backend

    def close(self) -> None:
        if self.backend is not None:
            backend, self.backend = self.backend, None
            with contextlib.suppress(Exception):
                backend.close()


def _deliver(notification: Notification, message: Message, mailer: _Mailer) -> None:
    if isinstance(message, Email):
        if not message.to:
            raise DeliveryError("There is no e-mail address to send it to.")
        email = EmailMultiAlternatives(
            subject=safe_text(one_line(message.subject), 250),
            body=safe_text(message.body, EMAIL_MAX_CHARS),
            from_email=settings.DEFAULT_FROM_EMAIL,
            to=message.to,
            # The same Message-ID on every attempt: a copy sent again after a worker died is one message to
            # the mailboxes that fold duplicates.
            headers={"Message-ID": _message_id(notification)},
        )
        if message.html:
            email.attach_alternative(safe_text(message.html, EMAIL_MAX_CHARS), "text/html")
        try:
            email.connection = mailer.connection()
            email.send(fail_silently=False)
        except Exception:
            mailer.close()
            raise
    else:
        _post_slack(message)


def _error_text(exc: Exception) -> str:
    text = str(exc) or exc.__class__.__name__
    if not isinstance(exc, DeliveryError):
        text = f"{exc.__class__.__name__}: {text}"
    return text if len(text) <= ERROR_MAX_CHARS else text[: ERROR_MAX_CHARS - 1] + "…"


# --- The message -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Account:
    name: str
    tier: str
    is_customer: bool


def notification_context(*, assignment: Assignment) -> dict[str, Any]:
    """What the e-mail and the Slack post show about the assignment's lead.

    Missing receipt keys, an empty account or rule, and odd shapes of the form
    answers or page history give blanks, never an error.
    """
    lead = assignment.lead
    rep = assignment.rep
    receipt = lead.receipt if isinstance(lead.receipt, dict) else {}
    routing = receipt.get("routing")
    routing = routing if isinstance(routing, dict) else {}
    # How the lead became theirs when routing did not give it to them (taken from a shared queue, reassigned,
    # reopened): the routing summary would still say where it waited on arrival.
    by = assignment.assigned_by
    became_theirs = how_it_became_theirs(
        reason=assignment.reason,
        note=assignment.note,
        owner=(rep.user.get_full_name() or rep.user.get_username()) if rep is not None else "you",
        by=(by.get_full_name() or by.get_username()) if by is not None else "",
        queue=assignment.queue.name if assignment.queue is not None else "",
    )
    summary = (
        became_theirs
        or inline_text(routing.get("summary")).strip()
        or assignment.note
        or assignment.get_reason_display()
    )
    account = (
        _Account(
            name=lead.account.name,
            tier=lead.account.get_tier_display() if lead.account.tier else "",
            is_customer=lead.account.is_customer,
        )
        if lead.account is not None
        else None
    )
    try:
        due_at = assignment.task.due_at
    except RepTask.DoesNotExist:
        due_at = _first_touch_due(assignment)
    return {
        "lead": lead,
        "name": lead_name(lead),
        "label": lead_label(lead),
        "account": account,
        "score": lead.score,
        "fit_score": lead.fit_score,
        "intent_score": lead.intent_score,
        "routing_summary": summary,
        "rule_name": lead.rule.name if lead.rule is not None else "",
        "queue_name": assignment.queue.name if assignment.queue is not None else "",
        "form_answers": form_answer_pairs(lead.form_answers),
        "page_history": page_history_lines(lead.page_history),
        "due_at": format_due(due_at, rep.time_zone if rep is not None else "UTC"),
        "link": lead_admin_link(lead),
        "rep_name": (rep.user.get_short_name() or rep.user.get_username()) if rep is not None else "",
    }


def lead_admin_link(lead: Lead) -> str:
    """The lead's admin page, absolute, for messages read outside the app.

    Spelled out rather than reversed: a worker sending mail should not have to import
    the whole URLconf (API, schema views), and a broken import there must not stop
    notifications.
    """
    return f"{settings.LEADROUTER_BASE_URL.rstrip('/')}/admin/routing/lead/{lead.pk}/change/"


def _assignment_messages(notifications: Sequence[Notification]) -> Callable[[Notification], Message]:
    """The renderer of routing's own kinds: the new owner's e-mail (text and HTML) and Slack post, from the
    assignment's context (built once per assignment)."""
    contexts: dict[int, dict[str, Any]] = {}

    def message(notification: Notification) -> Message:
        assignment = notification.assignment
        if assignment is None:
            raise DeliveryError("A new-lead notice needs its assignment, and this one has none.")
        context = contexts.get(assignment.pk)
        if context is None:
            # The assignment came loaded with its lead (with account and rule), rep (with user), queue and task.
            context = contexts[assignment.pk] = notification_context(assignment=assignment)
        if notification.kind == Notification.Kind.EMAIL:
            address = notification.rep.user.email
            if not address:
                raise DeliveryError("The rep's user has no e-mail address.")
            return Email(
                subject=f"New lead: {context['label']}",
                body=render_to_string("routing/notify/lead_assigned.txt", context),
                html=render_to_string("routing/notify/lead_assigned.html", context),
                to=[address],
            )
        urls = slack_webhook_urls(assignment=assignment)
        if not urls:
            raise DeliveryError("Neither the rep nor the queue has a Slack webhook any more.")
        return SlackPost(urls=urls, text=slack_text(context))

    return message


notice_kind_register(Notification.Kind.EMAIL, channel=Notification.Kind.EMAIL, render=_assignment_messages)
notice_kind_register(Notification.Kind.SLACK, channel=Notification.Kind.SLACK, render=_assignment_messages)


def _message_id(notification: Notification) -> str:
    host = urlsplit(settings.LEADROUTER_BASE_URL).hostname or "leadrouter.invalid"
    return f"<notification-{notification.pk}.lead-{notification.lead_id}@{host}>"


def _post_slack(post: SlackPost) -> None:
    """POST the message to every webhook; fail if any of them failed."""
    if not post.urls:
        raise DeliveryError("There is no Slack webhook to post it to.")
    body = json.dumps({"text": safe_text(post.text, SLACK_MAX_CHARS)}).encode()
    errors = []
    for url in post.urls:
        try:
            _post_json(url, body)
        except DeliveryError as exc:
            errors.append(str(exc))
    if errors:
        raise DeliveryError("; ".join(errors))


def _post_json(url: str, body: bytes) -> None:
    host = urlsplit(url).hostname or url
    if urlsplit(url).scheme not in ("http", "https"):
        raise DeliveryError(f"Slack webhook {host}: only http(s) URLs are posted to.")
    request = urllib.request.Request(
        url, data=body, method="POST", headers={"Content-Type": "application/json; charset=utf-8"}
    )
    try:
        with urllib.request.urlopen(request, timeout=settings.LEADROUTER_SLACK_TIMEOUT_SECONDS) as response:
            status = response.status
    except urllib.error.HTTPError as exc:
        raise DeliveryError(f"Slack webhook {host} answered HTTP {exc.code}.") from exc
    except (urllib.error.URLError, OSError) as exc:
        reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
        raise DeliveryError(f"Slack webhook {host} unreachable: {reason}.") from exc
    if not 200 <= status < 300:
        raise DeliveryError(f"Slack webhook {host} answered HTTP {status}.")


def slack_text(context: dict[str, Any]) -> str:
    """A one-line headline with the link, then a few lines of context, in Slack mrkdwn."""
    lead: Lead = context["lead"]
    lines = [f"*New lead for you:* <{context['link']}|{slack_escape(context['label'])}>"]
    who = " · ".join(part for part in (lead.title, lead.email, lead.phone) if part)
    if who:
        lines.append(slack_escape(who))
    account: _Account | None = context["account"]
    if account is not None:
        details = ", ".join(part for part in (account.tier, "customer" if account.is_customer else "") if part)
        lines.append(f"Account: {slack_escape(account.name)}" + (f" ({slack_escape(details)})" if details else ""))
    if context["score"] is not None:
        lines.append(f"Score: {context['score']}")
    why = context["routing_summary"] + (f" (rule: {context['rule_name']})" if context["rule_name"] else "")
    lines.append(f"Why: {slack_escape(why)}")
    lines.append(f"Follow up by {context['due_at']}")
    return "\n".join(lines)


def slack_escape(text: str) -> str:
    # Slack's mrkdwn treats only these three as control characters.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


# --- Small helpers ---------------------------------------------------------------------------------------


def _first_touch_due(assignment: Assignment) -> dt.datetime:
    return assignment.assigned_at + dt.timedelta(minutes=settings.LEADROUTER_FIRST_TOUCH_MINUTES)


def format_due(due_at: dt.datetime, time_zone: str) -> str:
    """The due time in the rep's own time zone, which is what the rep reads it in."""
    try:
        zone = ZoneInfo(time_zone)
    except (ZoneInfoNotFoundError, ValueError):
        zone = ZoneInfo("UTC")
    return timezone.localtime(due_at, zone).strftime("%Y-%m-%d %H:%M %Z")


def notifications_sweep(
    *, pending_for_seconds: int = 60, max_attempts: int = MAX_ATTEMPTS, sending_for_seconds: float | None = None
) -> int:
    """Send what a lost message, a failure or a dead worker left behind; return how many went out.

    1. Notifications still pending after ``pending_for_seconds`` (the broker was down after routing).
    2. Failed ones with attempts left (``notifications_retry_failed``).
    3. Ones left ``sending`` for longer than ``sending_for_seconds``
       (``LEADROUTER_NOTIFICATION_SENDING_TIMEOUT_SECONDS``): e-mail is sent again, Slack is marked delivery
       unknown (``notifications_recover_stuck``).

    Safe to overlap with ``notifications_send``: each is claimed first."""
    if sending_for_seconds is None:
        sending_for_seconds = settings.LEADROUTER_NOTIFICATION_SENDING_TIMEOUT_SECONDS
    now = timezone.now()
    cutoff = now - dt.timedelta(seconds=pending_for_seconds)
    overdue = set(
        Notification.objects.filter(status=Notification.Status.PENDING, created_at__lt=cutoff).values_list(
            "pk", flat=True
        )
    )
    overdue.update(pk for pk, _ in _retry_failed(max_attempts=max_attempts))
    overdue.update(
        pk for pk, _ in _recover_stuck(older_than_seconds=sending_for_seconds, max_attempts=max_attempts, now=now)
    )
    return notifications_send(notification_ids=sorted(overdue)) if overdue else 0
