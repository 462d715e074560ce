"""Who may see what: the one definition, asked by the pages, the API, the reports and the escalations alike.

Every read that depends on who is asking goes through one of the selectors below, so a lead is visible
(or not) to the same people on its page, in ``GET /api/v1/leads/{id}/``, on the team board, in the
reports and on the escalations page. People and teams come from ``territories.access``.

Who sees a lead:

1. **RevOps** (``territories.access.is_revops``: superusers, and active staff holding ``routing.view_lead``,
   which the *RevOps* group grants) see every lead. A regional RevOps user, whose django-guardian grants on
   territories, queues or rules work in admin only, is not RevOps here.
2. **A rep** sees the leads they own now. When a lead moves on (reassigned, sent back, taken by the
   escalation ladder), the previous owner no longer sees it, nor its escalations.
3. **A manager** sees the leads owned now by the reps they manage: the reps of the teams they manage and
   their direct reports (``territories.access.managed_reps``).
4. **A deputy** (a user a manager or RevOps delegated a queue to: the django-guardian object permission
   ``routing.deputize_queue`` on it) sees the leads whose queue is that queue, whoever owns them, while
   the delegation lasts: they act as the queue's manager.
5. **An API key** sees only the leads posted with it.

Anyone else sees nothing; pages and endpoints answer 404, never 403, so they do not admit a lead exists.

A lead's **managers** are the managers of its owner (3) and the deputies of its queue (4). They, and
RevOps, handle its escalations (acknowledge, resolve) and may reassign it; the owner sees its escalations
read-only. The reps a user acts on (team board, reassignment targets, time off, departures, deputies) are
the reps they manage, and for a deputy also the active members of the queues delegated to them; RevOps act
on every rep. The routing health page and the reports are open to RevOps and to anyone who manages
(a team, a direct report or a delegated queue), and count the leads that person sees.
"""

from dataclasses import dataclass
from typing import Any

from django.contrib.auth import get_user_model
from django.db.models import Exists, OuterRef, Q, QuerySet
from guardian.shortcuts import get_objects_for_user

from routing.models import ApiKey, Lead, Queue, QueueMembership
from territories.access import is_revops, managed_reps
from territories.models import Rep, Team

__all__ = [
    "IntakeClient",
    "Roles",
    "acting_reps",
    "delegable_queues",
    "deputy_queues",
    "is_revops",
    "lead_for_requester",
    "lead_scope",
    "leads_for_requester",
    "managed_lead_scope",
    "managed_open_leads",
    "may_delegate",
    "may_reopen",
    "may_see_reports",
    "report_queues",
    "roles_of",
    "visible_leads",
]


@dataclass(frozen=True)
class IntakeClient:
    """The requester behind an API key: a system, not a person.

    What it may do is its key's scopes (``ApiScope``); it only ever sees the leads
    it posted. It is never a user, so no page or admin permission applies to it.
    """

    api_key: ApiKey
    is_authenticated: bool = True
    is_active: bool = True
    is_staff: bool = False
    is_superuser: bool = False

    @property
    def pk(self) -> int:
        return self.api_key.pk

    def __str__(self) -> str:
        return f"intake source {self.api_key.name}"


def _signed_in(user: Any) -> bool:
    return bool(user is not None and user.is_authenticated)


def deputy_queues(*, user: Any) -> QuerySet[Queue]:
    """The queues delegated to ``user`` as deputy (their own grant or their group's). Lazy: usable as a subquery."""
    if not _signed_in(user):
        return Queue.objects.none()
    return get_objects_for_user(user, "routing.deputize_queue", klass=Queue, accept_global_perms=False)


def _nothing(prefix: str) -> Q:
    return Q(**{f"{prefix}pk__in": []})


def managed_lead_scope(user: Any, prefix: str = "") -> Q:
    """The leads ``user`` acts on as one of their managers (rules 3 and 4), as a filter on Lead or, through
    ``prefix`` (``"lead__"``), on a model pointing at it. Everything for RevOps. Subqueries only: no query."""
    if is_revops(user):
        return Q()
    if not _signed_in(user):
        return _nothing(prefix)
    return Q(**{f"{prefix}owner__in": managed_reps(user=user).values("pk")}) | Q(
        **{f"{prefix}queue__in": deputy_queues(user=user).values("pk")}
    )


def lead_scope(user: Any, prefix: str = "") -> Q:
    """The leads ``user`` sees (rules 1 to 4), as a filter on Lead or, through ``prefix``, on a model
    pointing at it. Subqueries only: adds no query of its own."""
    if is_revops(user):
        return Q()
    if not _signed_in(user):
        return _nothing(prefix)
    return Q(**{f"{prefix}owner__user": user}) | managed_lead_scope(user, prefix)


def visible_leads(*, user: Any) -> QuerySet[Lead]:
    """Every lead ``user`` sees."""
    return Lead.objects.filter(lead_scope(user))


def lead_for_requester(*, requester: Any, lead_id: int) -> Lead | None:
    """The lead with this id if the requester sees it, else None (the page or endpoint answers 404).

    An API key (``IntakeClient``) sees the leads posted with it; a person what ``lead_scope`` says. One
    query for the lead, with everything its page and the API show about it.
    """
    leads = Lead.objects.select_related("owner__user", "queue", "territory", "account", "rule").filter(pk=lead_id)
    if isinstance(requester, IntakeClient):
        return leads.filter(intake_source=requester.api_key).first()
    if not _signed_in(requester):
        return None
    return leads.filter(lead_scope(requester)).first()


def leads_for_requester(*, requester: Any) -> QuerySet[Lead]:
    """Every lead the requester sees, by the same rules as ``lead_for_requester``: an API key the leads
    posted with it, a person what ``lead_scope`` says, anyone else none. Lazy."""
    if isinstance(requester, IntakeClient):
        return Lead.objects.filter(intake_source=requester.api_key)
    if not _signed_in(requester):
        return Lead.objects.none()
    return Lead.objects.filter(lead_scope(requester))


def may_reopen(*, user: Any, lead: Lead) -> bool:
    """Whether ``user`` may reopen ``lead`` when it is closed: its owner, or one of the owner's managers (RevOps
    included). How long a lead stays reopenable is ``routing.services.reopen_problem``."""
    if not _signed_in(user) or lead.owner_id is None:
        return False
    if Rep.objects.filter(pk=lead.owner_id, user=user).exists():
        return True
    return Lead.objects.filter(managed_lead_scope(user), pk=lead.pk).exists()


def managed_open_leads(*, user: Any) -> QuerySet[Lead]:
    """The open leads (assigned, accepted, working) ``user`` may reassign as one of their managers."""
    return Lead.objects.filter(managed_lead_scope(user), status__in=Lead.OPEN_STATUSES).select_related(
        "owner__user", "queue", "sla"
    )


def acting_reps(*, user: Any) -> QuerySet[Rep]:
    """The reps ``user`` acts on as a manager: all for RevOps; else the reps they manage and, for a deputy,
    the active members of the queues delegated to them. Anyone else: none (the pages answer 404)."""
    reps = Rep.objects.select_related("user", "team").order_by("user__username")
    if is_revops(user):
        return reps
    if not _signed_in(user):
        return reps.none()
    in_scope = Rep.objects.filter(
        Q(pk__in=managed_reps(user=user).values("pk"))
        | Q(memberships__queue__in=deputy_queues(user=user).values("pk"), memberships__active=True)
    ).values("pk")
    return reps.filter(pk__in=in_scope)


def delegable_queues(*, user: Any) -> QuerySet[Queue]:
    """The queues ``user`` may hand to a deputy: all for RevOps, else those with an active member they
    manage. A deputy does not delegate further."""
    if is_revops(user):
        return Queue.objects.order_by("name")
    if not _signed_in(user):
        return Queue.objects.none()
    members = QueueMembership.objects.filter(rep__in=managed_reps(user=user).values("pk"), active=True)
    return Queue.objects.filter(pk__in=members.values("queue_id")).order_by("name")


def may_delegate(*, user: Any, queue: Queue) -> bool:
    return delegable_queues(user=user).filter(pk=queue.pk).exists()


def report_queues(*, user: Any) -> QuerySet[Queue]:
    """The queues whose workload ``user`` may look at: all for RevOps, else the queues one of the reps they
    manage belongs to and the queues delegated to them."""
    queues = Queue.objects.order_by("-is_catch_all", "name")
    if is_revops(user):
        return queues
    if not _signed_in(user):
        return queues.none()
    with_managed = QueueMembership.objects.filter(rep__in=managed_reps(user=user).values("pk")).values("queue_id")
    return queues.filter(Q(pk__in=with_managed) | Q(pk__in=deputy_queues(user=user).values("pk")))


@dataclass(frozen=True)
class Roles:
    """What a signed-in user is, for the page shell and the landing page."""

    is_revops: bool = False
    is_rep: bool = False
    # Manages a team, has direct reports, or is a deputy for a queue: they get the team board,
    # the escalations page and the reports, each scoped as the module docstring says.
    manages: bool = False


def roles_of(user: Any) -> Roles:
    """``user``'s roles in one query (plus the permission check RevOps need), kept on the user object for the
    rest of the request, as Django keeps permissions: the view and the page shell both ask."""
    if not _signed_in(user):
        return Roles()
    cached = getattr(user, "_access_roles", None)
    if isinstance(cached, Roles):
        return cached
    row = (
        get_user_model()
        .objects.filter(pk=user.pk)
        .annotate(
            is_rep=Exists(Rep.objects.filter(user=OuterRef("pk"))),
            manages_team=Exists(Team.managers.through.objects.filter(user=OuterRef("pk"))),
            has_reports=Exists(Rep.objects.filter(manager=OuterRef("pk"))),
            is_deputy=Exists(deputy_queues(user=user)),
        )
        .values("is_rep", "manages_team", "has_reports", "is_deputy")
        .first()
    ) or {}
    roles = Roles(
        is_revops=is_revops(user),
        is_rep=bool(row.get("is_rep")),
        manages=bool(row.get("manages_team") or row.get("has_reports") or row.get("is_deputy")),
    )
    user._access_roles = roles
    return roles


def may_see_reports(*, user: Any) -> bool:
    """RevOps and anyone who manages see the routing health page and the reports; anyone else gets a 404."""
    roles = roles_of(user)
    return roles.is_revops or roles.manages
