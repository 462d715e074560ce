"""A month of demo lead history, made through the real intake, routing and SLA services.

``demo_history_load`` gives every demo persona pages with data: the rep's open leads in several SLA
states, the manager's team board and escalations, and RevOps' health page and report charts.

Time travel is a dev dependency (time-machine), so the history is not routed "on" its day. Each day's
leads are received and routed at the real now, then their rows are moved back in time by one offset per
lead, and their first-touch clocks are restarted at the backdated routing time so due times follow the
business calendars. Touches are logged afterwards with their time in the past, so speed-to-lead and
met/missed come out as they would have.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from routing.bulk import rows_update
from routing.dispatch import leads_route
from routing.intake import leads_receive
from routing.models import ApiKey, Assignment, Lead, Notification, Queue, RepTask
from routing.ownership import loads_recount
from routing.reassign import leads_reassign
from routing.services import lead_accept, lead_disqualify, lead_not_mine, lead_nurture
from sla.models import Escalation, LeadSla, Touch
from sla.services import sla_clocks_start, touch_log
from sla.services_pages import escalations_handle
from sla.sweep import escalations_sweep
from territories.coverage_version import coverage_version_bump
from territories.models import Account, Rep

# The demo's e-mail goes nowhere while the history is made: reminders and alerts of a month ago are history,
# not news. See ``_mail_goes_nowhere``.
DUMMY_EMAIL_BACKEND = "django.core.mail.backends.dummy.EmailBackend"
SOURCES = (("Demo request", 3), ("Webinar", 3), ("Contact us", 4), ("Partner referral", 1))
# Where inbound comes from, weighted roughly like the demo organisation's markets. "ZA", "IN" and "AE" are
# outside every territory: they end in the catch-all queue, as unplanned markets do.
COUNTRIES = (
    ("DE", 14),
    ("AT", 3),
    ("CH", 3),
    ("US", 22),
    ("GB", 7),
    ("FR", 5),
    ("NL", 2),
    ("SE", 2),
    ("JP", 4),
    ("AU", 4),
    ("SG", 2),
    ("CA", 3),
    ("BR", 2),
    ("MX", 1),
    ("ZA", 2),
    ("IN", 2),
    ("AE", 1),
)


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


US_STATES = ("CA", "WA", "OR", "CO", "TX", "IL", "MN", "OH", "NY", "MA", "FL", "GA", "NC", "PA", "NJ", "VA")
FIRST_NAMES = _words(
    "Anna Lukas Sophie Jonas Marie Felix Laura Paul Emma Noah Olivia Liam Ava James Isabella Lucas Mia "
    "Ethan Chloe Hugo Léa Louis Yui Haruto Sakura Ren Chen Wei Priya Arjun Sofia Mateo Camila Tom Eva "
    "Nils Freja"
)
LAST_NAMES = _words(
    "Müller Schmidt Schneider Fischer Weber Meyer Wagner Becker Hoffmann Smith Johnson Williams Brown "
    "Jones Garcia Miller Davis Martin Bernard Dubois Sato Suzuki Takahashi Tan Lim Patel Silva Santos "
    "Jensen Olsen"
)
TITLES = (
    "Head of Sales Operations",
    "VP Sales",
    "Revenue Operations Manager",
    "Marketing Manager",
    "CTO",
    "IT Director",
    "Sales Manager",
    "Founder",
    "Business Analyst",
    "Procurement Lead",
)
INDUSTRIES = ("software", "manufacturing", "financial_services", "healthcare", "retail", "logistics", "energy")
FREE_MAIL = ("gmail.com", "outlook.com", "yahoo.com", "gmx.de", "web.de", "hotmail.co.uk")
PRODUCTS = ("analytics", "integrations", "platform")
PAGES = (
    "/",
    "/pricing",
    "/product/routing",
    "/product/analytics",
    "/integrations",
    "/customers",
    "/blog/speed-to-lead",
)
NOT_MINE_REASONS = (
    "Wrong region: the company sits in another country.",
    "Existing customer of a colleague.",
    "Job seeker, not a buyer.",
)
HISTORY_DAYS = 30
ALWAYS_OPEN_DAYS = range(0, 2)  # Today and yesterday: leads left as they came, so clocks still run.
# How often the escalation sweep runs while the history is made (beat runs it every 30 seconds).
SWEEP_EVERY = timedelta(hours=4)


@dataclass
class _Planned:
    payload: dict[str, Any]
    received_at: datetime


@contextmanager
def _mail_goes_nowhere() -> Iterator[None]:
    """Send the history's e-mail to Django's dummy backend, which discards it.

    The SLA sweep sends its reminders and alerts with ``get_connection()``, which reads ``EMAIL_BACKEND``
    when it sends (after commit). ``override_settings`` would do the same but is a test utility; this is a
    one-off management command in one thread, so the setting is swapped and restored here.
    Notifications of routing are marked sent instead (see ``_backdate``), so the worker sends none of them.
    """
    previous = settings.EMAIL_BACKEND
    settings.EMAIL_BACKEND = DUMMY_EMAIL_BACKEND
    try:
        yield
    finally:
        settings.EMAIL_BACKEND = previous


def demo_history_load(
    *, days: int = HISTORY_DAYS, leads_per_day: int = 25, now: datetime | None = None, seed: int = 7
) -> int:
    """Make ``days`` days of inbound leads up to ``now`` through the real pipeline; return how many.

    1. Plan each day's leads (payloads and arrival times) with ``random.Random(seed)``.
    2. Per day: ``leads_receive`` with the demo API key, ``leads_route``; send a few back as "not mine"
       and reassign a few by hand; then move the rows back to their arrival time and restart the clocks
       there (``_backdate``).
    3. Log first touches for most assigned leads (minutes to days after routing), accept some, close
       older ones; leave the rest untouched, so their clocks breach.
    4. Run the escalation sweep every four hours through each day, and at now: the due ladder steps fire
       (reminders, manager alerts, reassignments) as real escalations about when they fell due. The
       managers have worked the older ones (``_handle_escalations``), so what is open is the latest news.
    5. Recount the reps' open and new-today counters from the rows (``loads_recount``).

    Queues normally skip reps outside working hours; routing at the real now would hand a weekend load
    to the catch-all, so the queues route to off-hours reps while the history loads (restored after).
    Side effects: everything routing, intake and SLA services write; no e-mail. One transaction.
    """
    now = now or timezone.now()
    rng = random.Random(seed)
    intake_source = ApiKey.objects.get(name=_demo_api_key_name())
    accounts = list(Account.objects.prefetch_related("domains").select_related("owner__user").order_by("pk"))
    manager = get_user_model().objects.filter(username="manager").first()
    total = 0
    with _mail_goes_nowhere(), transaction.atomic():
        skipping = list(Queue.objects.filter(skip_off_hours_reps=True).values_list("pk", flat=True))
        Queue.objects.filter(pk__in=skipping).update(skip_off_hours_reps=False)
        coverage_version_bump()  # QuerySet.update sends no signals; routing must see the change.
        for days_ago in range(days - 1, -1, -1):
            planned = _plan_day(rng, accounts, now=now, days_ago=days_ago, count=leads_per_day)
            lead_ids = _receive_and_route(rng, planned, intake_source=intake_source, manager=manager)
            total += len(lead_ids)
            _work(rng, lead_ids, now=now, days_ago=days_ago)
            # The sweep runs as the day passes, so each step fires about when it fell due.
            for moment in _sweep_times(now, days_ago=days_ago):
                escalations_sweep(now=moment)
        Queue.objects.filter(pk__in=skipping).update(skip_off_hours_reps=True)
        coverage_version_bump()
        escalations_sweep(now=now)
        # Every day's leads were routed at the real now, so the reps' counters took them all as new today, then
        # the rows moved back to their day: routing for real reads the counters, so they must count what the
        # rows say. (While the history loads, those inflated counts keep each rep to about a daily cap's worth
        # of the month's round-robin leads; the demo's content is built on that.)
        loads_recount(now=now, fix=True)
        _handle_escalations()
        # The sweep's reassignments notified their new owners: old news too, like routing's (see _backdate).
        Notification.objects.filter(lead__intake_source=intake_source, status=Notification.Status.PENDING).update(
            status=Notification.Status.SENT, sent_at=now, attempts=1
        )
    return total


def _demo_api_key_name() -> str:
    from leadrouter.demo.loader import DEMO_API_KEY_NAME

    return DEMO_API_KEY_NAME


# --- 1. Payloads -------------------------------------------------------------------------------------------


def _plan_day(
    rng: random.Random, accounts: list[Account], *, now: datetime, days_ago: int, count: int
) -> list[_Planned]:
    """``count`` leads arriving on the day ``days_ago`` days before ``now``, in arrival order.

    Weekends get a third of the traffic. Arrivals spread over 06:00–20:00 UTC; today's stop before now.
    """
    day = (now - timedelta(days=days_ago)).date()
    if day.weekday() >= 5:
        count = max(1, count // 3)
    start = datetime.combine(day, time(6), tzinfo=UTC)
    span = 14 * 3600
    if days_ago == 0:
        if now - start < timedelta(minutes=15):
            start = now - timedelta(hours=12)  # Before 06:15 UTC: today's leads came in overnight.
        span = max(600, min(span, int((now - start).total_seconds()) - 300))
    arrivals = sorted(start + timedelta(seconds=rng.randrange(span)) for _ in range(count))
    planned = [_Planned(_payload(rng, accounts, index=(days_ago, i)), at) for i, at in enumerate(arrivals)]
    if days_ago == 0:
        # Customers of the demo rep wrote in just now: anna.schmidt has fresh leads whose clocks run.
        customers = [a for a in accounts if a.is_customer and a.owner and a.owner.user.username == "anna.schmidt"]
        for minutes, account in zip((12, 75, 200), customers * 3, strict=False):
            payload = _payload(rng, [account], index=(0, 100 + minutes), account_share=1.0)
            planned.append(_Planned(payload, now - timedelta(minutes=minutes)))
        planned.sort(key=lambda item: item.received_at)
    return planned


def _payload(
    rng: random.Random, accounts: list[Account], *, index: tuple[int, int], account_share: float = 0.35
) -> dict[str, Any]:
    """One inbound lead as a web form or partner system posts it."""
    first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
    source = rng.choices([name for name, _ in SOURCES], weights=[weight for _, weight in SOURCES])[0]
    payload: dict[str, Any] = {
        "first_name": first,
        "last_name": last,
        "title": rng.choice(TITLES),
        "source": source,
        "campaign": f"{source.lower().replace(' ', '-')}-2026",
        "external_id": f"demo-{index[0]}-{index[1]}-{rng.randrange(10**6)}",
        "product_interest": rng.choice(PRODUCTS),
        "form_answers": {
            "team_size": rng.choice(["1-5", "6-20", "21-50", "50+"]),
            "timeline": rng.choice(["this quarter", "next quarter", "just researching"]),
            "message": rng.choice(["Please call me.", "We route leads by hand today.", "Pricing for 40 reps?", ""]),
        },
        "page_history": [
            {"url": page, "at": f"-{minutes}m"}
            for page, minutes in zip(rng.sample(PAGES, rng.randint(1, 4)), (30, 20, 10, 2), strict=False)
        ],
    }
    local = _mailbox(first, last)
    roll = rng.random()
    if roll < account_share and accounts:
        account = rng.choice(accounts)
        domains = [domain.domain for domain in account.domains.all()]
        payload["country"] = account.country or "DE"
        payload["industry"] = account.industry or rng.choice(INDUSTRIES)
        if domains and rng.random() < 0.75:
            payload["email"] = f"{local}@{rng.choice(domains)}"
            payload["company"] = account.name
        else:
            # By name only, sometimes spelt loosely: fuzzy matching, and now and then a weak match.
            payload["email"] = f"{local}@{rng.choice(FREE_MAIL)}"
            payload["company"] = _loosely(rng, account.name)
    else:
        country = rng.choices([code for code, _ in COUNTRIES], weights=[weight for _, weight in COUNTRIES])[0]
        company = _company(rng, country)
        payload["country"] = country
        payload["company"] = company
        payload["industry"] = rng.choice(INDUSTRIES)
        payload["employees"] = rng.choice([4, 8, 25, 60, 140, 400, 900, 1800, 6000])
        if rng.random() < 0.12:
            payload["email"] = f"{local}@{rng.choice(FREE_MAIL)}"
        elif rng.random() < 0.02:
            payload["email"] = f"{local}@example.com"  # The web team testing the form.
        else:
            payload["email"] = f"{local}@{_domain(company)}"
    if payload.get("country") == "US":
        payload["state"] = rng.choice(US_STATES)
    if rng.random() < 0.3:
        payload["phone"] = (
            f"+49 30 {rng.randrange(1000000, 9999999)}" if payload["country"] in ("DE", "AT", "CH") else ""
        )
    return {key: value for key, value in payload.items() if value not in ("", None)}


def _mailbox(first: str, last: str) -> str:
    plain = f"{first}.{last}".lower()
    for umlaut, ascii_ in (("ü", "ue"), ("ö", "oe"), ("ä", "ae"), ("é", "e")):
        plain = plain.replace(umlaut, ascii_)
    return plain


def _loosely(rng: random.Random, name: str) -> str:
    """The account's name as people type it: without the legal form, or with a typo."""
    words = name.split()
    if len(words) > 1 and rng.random() < 0.6:
        return " ".join(words[:-1])
    position = rng.randrange(1, max(2, len(name) - 1))
    return name[:position] + name[position + 1 :]


COMPANY_PARTS = _words(
    "Nord Süd Alpen Blau Grün Stern Fluss Berg Kraft Licht Nova Apex Bright Cedar Harbor Summit Pioneer "
    "Sakura Fuji Kiwi Coral Atlas Orbit Vertex Lumen Zenith"
)
COMPANY_KINDS = ("Systems", "Logistik", "Analytics", "Labs", "Solutions", "Digital", "Partners", "Works")
LEGAL_FORM = {"DE": "GmbH", "AT": "GmbH", "CH": "AG", "US": "Inc.", "GB": "Ltd", "FR": "SAS", "JP": "K.K."}


def _company(rng: random.Random, country: str) -> str:
    legal = LEGAL_FORM.get(country, "Ltd")
    return f"{rng.choice(COMPANY_PARTS)}{rng.choice(COMPANY_PARTS).lower()} {rng.choice(COMPANY_KINDS)} {legal}"


def _domain(company: str) -> str:
    words = company.lower().replace("ü", "ue").replace("ö", "oe").replace("ä", "ae").split()
    return f"{words[0]}-{words[1]}.com"


# --- 2. Receive, route, backdate ----------------------------------------------------------------------------


def _receive_and_route(
    rng: random.Random, planned: list[_Planned], *, intake_source: ApiKey, manager: Any
) -> list[int]:
    """Store and route one day's leads at the real now, misroute a few back, then move them to their day."""
    received = leads_receive(payloads=[item.payload for item in planned], intake_source=intake_source)
    lead_ids = [item.lead_id for item in received if item.created]
    arrival = {item.lead_id: plan.received_at for item, plan in zip(received, planned, strict=True) if item.created}
    leads_route(lead_ids=lead_ids)
    _misroutes(rng, lead_ids, manager=manager)
    _backdate(lead_ids, arrival)
    return lead_ids


def _misroutes(rng: random.Random, lead_ids: list[int], *, manager: Any) -> None:
    """About one lead a day is sent back as "not mine" (and routed again); every few days a manager
    reassigns one by hand within the team."""
    assigned = list(
        Lead.objects.filter(pk__in=lead_ids, status=Lead.Status.ASSIGNED, owner__isnull=False)
        .select_related("owner__user", "owner__team")
        .order_by("pk")
    )
    if not assigned:
        return
    if rng.random() < 0.8:
        lead = rng.choice(assigned)
        assert lead.owner is not None
        if lead_not_mine(lead=lead, by=lead.owner.user, reason=rng.choice(NOT_MINE_REASONS)):
            leads_route(lead_ids=[lead.pk])  # lead_not_mine routes after commit; the history is one transaction.
    if manager is not None and rng.random() < 0.4:
        still_assigned = [item for item in assigned if item.status == Lead.Status.ASSIGNED]
        if not still_assigned:
            return
        lead = rng.choice(still_assigned)
        lead.refresh_from_db()
        owner = lead.owner
        if owner is None or owner.team_id is None or lead.status != Lead.Status.ASSIGNED:
            return
        colleagues = list(Rep.objects.filter(team_id=owner.team_id, active=True).exclude(pk=owner.pk).order_by("pk"))
        if colleagues:
            leads_reassign(leads=[lead], to_rep=rng.choice(colleagues), by=manager, note="Knows the account.")


def _shifted(value: datetime | None, offset: timedelta) -> datetime | None:
    return value + offset if value is not None else None


def _backdate(lead_ids: list[int], arrival: dict[int, datetime]) -> None:
    """Move the rows of these just-routed leads back so each lead arrived at ``arrival[lead_id]``.

    1. One offset per lead (its arrival minus its real ``received_at``) moves the lead's times, its
       assignments, notifications (marked sent: the history's news is old) and tasks.
    2. The clocks of leads with a rep restart at the backdated assignment time with ``sla_clocks_start``,
       so due times and ladder steps follow the business calendars of that day; tasks fall due with them.
    """
    leads = list(Lead.objects.filter(pk__in=lead_ids).only("id", "received_at", "routed_at", "updated_at"))
    offsets = {lead.pk: arrival[lead.pk] - lead.received_at for lead in leads}
    for lead in leads:
        offset = offsets[lead.pk]
        lead.received_at = arrival[lead.pk]
        if lead.routed_at is not None:
            lead.routed_at = lead.routed_at + offset
        lead.updated_at = lead.updated_at + offset
    rows_update(Lead, leads, ["received_at", "routed_at", "updated_at"])

    assignments = list(Assignment.objects.filter(lead_id__in=lead_ids).only("id", "lead_id", "assigned_at", "ended_at"))
    for assignment in assignments:
        assignment.assigned_at = assignment.assigned_at + offsets[assignment.lead_id]
        assignment.ended_at = _shifted(assignment.ended_at, offsets[assignment.lead_id])
    rows_update(Assignment, assignments, ["assigned_at", "ended_at"])

    notifications = list(Notification.objects.filter(lead_id__in=lead_ids).only("id", "lead_id", "created_at"))
    for notification in notifications:
        notification.created_at = notification.created_at + offsets[notification.lead_id]
        notification.status = Notification.Status.SENT
        notification.sent_at = notification.created_at + timedelta(seconds=2)
        notification.attempts = 1
    rows_update(Notification, notifications, ["created_at", "status", "sent_at", "attempts"])

    tasks = list(RepTask.objects.filter(lead_id__in=lead_ids).only("id", "lead_id", "created_at", "done_at"))
    for task in tasks:
        task.created_at = task.created_at + offsets[task.lead_id]
        task.done_at = _shifted(task.done_at, offsets[task.lead_id])
    rows_update(RepTask, tasks, ["created_at", "done_at"])

    # The clock (re)starts when the current owner got the lead.
    current = {
        assignment.lead_id: assignment.assigned_at
        for assignment in sorted(assignments, key=lambda item: (item.assigned_at, item.pk))
        if assignment.ended_at is None
    }
    with_clock = Lead.objects.filter(pk__in=LeadSla.objects.filter(lead_id__in=lead_ids).values("lead_id"))
    due: dict[int, datetime] = {}
    for lead in with_clock.order_by("pk"):
        started = current.get(lead.pk, lead.routed_at)
        assert started is not None
        for clock in sla_clocks_start(leads=[lead], now=started):
            if clock.due_at is not None:
                due[clock.lead_id] = clock.due_at
    open_tasks = [task for task in tasks if task.done_at is None and task.lead_id in due]
    for task in open_tasks:
        task.due_at = due[task.lead_id]
    rows_update(RepTask, open_tasks, ["due_at"])


def _sweep_times(now: datetime, *, days_ago: int) -> list[datetime]:
    """Every ``SWEEP_EVERY`` through the day ``days_ago`` days before ``now`` (UTC), up to ``now``."""
    midnight = (now - timedelta(days=days_ago)).replace(hour=0, minute=0, second=0, microsecond=0)
    moments = (midnight + SWEEP_EVERY * step for step in range(int(timedelta(days=1) / SWEEP_EVERY)))
    return [moment for moment in moments if moment <= now]


def _handle_escalations() -> None:
    """Each manager has worked the escalations that fired more than a day before their latest one about a lead
    the rep still holds (whatever the hour or the weekday the demo starts, their latest day's stay open) and
    those a later step for the same lead superseded: those
    whose lead was touched or closed since are resolved, the others acknowledged (the manager knows; the rep is
    on it). Each is handled by the lead's manager (the rep's own, else the team's first), else by RevOps."""
    waiting = list(
        Escalation.objects.filter(status=Escalation.Status.OPEN).values_list(
            "pk", "rep_id", "fired_at", "lead__owner_id"
        )
    )
    handlers = _escalation_handlers({rep_id for _, rep_id, _, _ in waiting})
    steps = list(Escalation.objects.values_list("pk", "lead_id", "fired_at"))
    last_step: dict[int, datetime] = {}
    for _, lead_id, fired_at in steps:
        last_step[lead_id] = max(last_step.get(lead_id, fired_at), fired_at)
    latest: dict[Any, datetime] = {}
    latest_held: dict[Any, datetime] = {}
    for _, rep_id, fired_at, owner_id in waiting:
        handler = handlers.get(rep_id)
        latest[handler] = max(latest.get(handler, fired_at), fired_at)
        if owner_id == rep_id:
            latest_held[handler] = max(latest_held.get(handler, fired_at), fired_at)
    anchor = {handler: latest_held.get(handler, at) for handler, at in latest.items()}
    # A later step for the same lead (an alert after a reminder) has the manager's attention instead.
    superseded = {pk for pk, lead_id, fired_at in steps if fired_at < last_step[lead_id]}
    worked: dict[Any, list[int]] = {}
    for pk, rep_id, fired_at, _ in waiting:
        handler = handlers.get(rep_id)
        if fired_at < anchor[handler] - timedelta(days=1) or pk in superseded:
            worked.setdefault(handler, []).append(pk)
    handled = [pk for ids in worked.values() for pk in ids]
    settled = set(
        Escalation.objects.filter(pk__in=handled)
        .filter(Q(lead__sla__touched_at__isnull=False) | ~Q(lead__status__in=Lead.OPEN_STATUSES))
        .values_list("pk", flat=True)
    )
    for handler, ids in worked.items():
        resolved = [pk for pk in ids if pk in settled]
        escalations_handle(
            escalation_ids=resolved,
            user=handler,
            status=Escalation.Status.RESOLVED,
            comment="Settled: the lead was worked.",
        )
        acknowledged = [pk for pk in ids if pk not in settled]
        escalations_handle(escalation_ids=acknowledged, user=handler, status=Escalation.Status.ACKNOWLEDGED, comment="")
    # Handled when the manager would have: an hour after each escalation fired.
    Escalation.objects.filter(pk__in=handled).update(handled_at=F("fired_at") + timedelta(hours=1))


def _escalation_handlers(rep_ids: set[int | None]) -> dict[int | None, Any]:
    """Who handles the escalations of each rep: the rep's manager, else the team's first manager, else RevOps."""
    revops = get_user_model().objects.filter(username="revops").first()
    handlers: dict[int | None, Any] = {None: revops}
    reps = Rep.objects.filter(pk__in=[pk for pk in rep_ids if pk is not None]).select_related("manager", "team")
    for rep in reps.prefetch_related("team__managers"):
        team_managers = sorted(rep.team.managers.all(), key=lambda user: user.pk) if rep.team else []
        handlers[rep.pk] = rep.manager or (team_managers[0] if team_managers else revops)
    return handlers


# --- 3. Work the leads ----------------------------------------------------------------------------------------


def _first_touch_delay(rng: random.Random) -> timedelta:
    """Minutes for most leads, hours for some, a day or more for a few."""
    roll = rng.random()
    if roll < 0.35:
        return timedelta(minutes=rng.uniform(1, 15))
    if roll < 0.7:
        return timedelta(minutes=rng.uniform(15, 180))
    if roll < 0.9:
        return timedelta(hours=rng.uniform(3, 26))
    return timedelta(hours=rng.uniform(26, 72))


def _work(rng: random.Random, lead_ids: list[int], *, now: datetime, days_ago: int) -> None:
    """First touches, acceptances and closes for one day's assigned leads.

    Most leads (85%) get a first touch, unless it would lie in the future; today's and yesterday's leads
    are mostly left as they came. Of the touched leads older than a week, most are closed (disqualified
    or back to nurture), so reps' open load stays what a real team carries.
    """
    leads = list(
        Lead.objects.filter(pk__in=lead_ids, status=Lead.Status.ASSIGNED, owner__isnull=False)
        .select_related("owner__user")
        .order_by("pk")
    )
    for lead in leads:
        assert lead.owner is not None and lead.routed_at is not None
        user = lead.owner.user
        touch_share = 0.3 if days_ago in ALWAYS_OPEN_DAYS else 0.85
        at = lead.routed_at + _first_touch_delay(rng)
        if rng.random() < 0.25:
            lead_accept(lead=lead, by=user)
        if rng.random() >= touch_share or at >= now:
            if days_ago > 10 and rng.random() < 0.5:
                lead_disqualify(lead=lead, by=user, reason="No answer after several attempts.")
            continue
        kind = rng.choice([Touch.Kind.CALL, Touch.Kind.CALL, Touch.Kind.EMAIL, Touch.Kind.MEETING])
        # The history is simulated as lived: the rep logs each touch as it happens, never after the fact.
        touch_log(lead=lead, kind=kind, at=at, by=user, now=at)
        if days_ago > 7:
            roll = rng.random()
            if roll < 0.45:
                lead_disqualify(lead=lead, by=user, reason=rng.choice(["No budget this year.", "Not a fit."]))
            elif roll < 0.75:
                lead_nurture(lead=lead, by=user)
