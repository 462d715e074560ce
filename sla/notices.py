"""The SLA ladder's notices: how a reminder to the rep and an alert to the managers read, by e-mail and on Slack.

The escalation sweep (sla/sweep.py) records them as notification outbox rows about the escalation that fired
(``routing.notify.notices_record``), in the batch's transaction, and enqueues one send task per batch after
commit. That task renders each notice with the functions this module registers with ``routing.notify`` when
the app starts (``register``, from ``SlaConfig.ready``), so routing never imports sla, and it sends, retries,
recovers and resends them like any other notification.

Who gets what:

- a reminder goes to the rep who holds the lead: an e-mail to their address, a Slack post to their own webhook;
- a manager alert goes to the addresses recorded when it fired (the rep's manager, else the team's managers),
  and a Slack post to the lead's queue's webhook, the channel where the queue's people see escalations.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from django.template.loader import render_to_string

from routing.models import Notification, Queue
from routing.notify import (
    DeliveryError,
    Email,
    Message,
    SlackPost,
    format_due,
    lead_admin_link,
    notice_kind_register,
    slack_escape,
)
from routing.render import lead_label
from sla.models import Escalation, LeadSla

Kind = Notification.Kind

# Each SLA kind and the channel it travels on.
SLA_KINDS = {
    Kind.SLA_REMINDER_EMAIL: Kind.EMAIL,
    Kind.SLA_REMINDER_SLACK: Kind.SLACK,
    Kind.SLA_ALERT_EMAIL: Kind.EMAIL,
    Kind.SLA_ALERT_SLACK: Kind.SLACK,
}


def register() -> None:
    """Tell the outbox how the SLA kinds are rendered (called once, from ``SlaConfig.ready``)."""
    for kind, channel in SLA_KINDS.items():
        notice_kind_register(kind, channel=channel, render=sla_messages)


def sla_messages(notifications: Sequence[Notification]) -> Callable[[Notification], Message]:
    """The message builder for these SLA notices. Reads, once for all of them, each escalation's reason,
    each lead's due time and the queues' webhooks; the lead and the rep with their user come loaded with the
    notices."""
    reasons = dict(
        Escalation.objects.filter(pk__in={n.escalation_id for n in notifications if n.escalation_id}).values_list(
            "pk", "reason"
        )
    )
    due = dict(LeadSla.objects.filter(lead_id__in={n.lead_id for n in notifications}).values_list("lead_id", "due_at"))
    queue_ids = {n.lead.queue_id for n in notifications if n.kind == Kind.SLA_ALERT_SLACK and n.lead.queue_id}
    hooks = dict(Queue.objects.filter(pk__in=queue_ids).values_list("pk", "slack_webhook_url")) if queue_ids else {}

    def message(notification: Notification) -> Message:
        lead, rep = notification.lead, notification.rep
        due_at = due.get(lead.pk)
        context: dict[str, Any] = {
            "lead": lead,
            "label": lead_label(lead),
            "rep_name": rep.user.get_full_name() or rep.user.get_username(),
            "due_at": format_due(due_at, rep.time_zone) if due_at is not None else "now",
            "link": lead_admin_link(lead),
            "reason": reasons.get(notification.escalation_id or 0, ""),
        }
        kind = notification.kind
        if kind == Kind.SLA_REMINDER_EMAIL:
            if not rep.user.email:
                raise DeliveryError("The rep's user has no e-mail address.")
            return Email(
                subject=f"Reminder: first touch due {context['due_at']} for {context['label']}",
                body=render_to_string("sla/email/reminder.txt", context),
                to=[rep.user.email],
            )
        if kind == Kind.SLA_ALERT_EMAIL:
            return Email(
                subject=f"Escalation: no first touch on {context['label']} ({context['rep_name']})",
                body=render_to_string("sla/email/manager_alert.txt", context),
                to=list(notification.recipients or []),
            )
        if kind == Kind.SLA_REMINDER_SLACK:
            if not rep.slack_webhook_url:
                raise DeliveryError("The rep has no Slack webhook any more.")
            return SlackPost(urls=[rep.slack_webhook_url], text=_reminder_text(context))
        if kind == Kind.SLA_ALERT_SLACK:
            hook = hooks.get(lead.queue_id) if lead.queue_id else None
            if not hook:
                raise DeliveryError("The lead's queue has no Slack webhook any more.")
            return SlackPost(urls=[hook], text=_alert_text(context))
        raise DeliveryError(f"{kind!r} is not an SLA notice.")

    return message


def _reminder_text(context: dict[str, Any]) -> str:
    return (
        f"*Reminder:* <{context['link']}|{slack_escape(context['label'])}> is waiting for your first touch, "
        f"due {context['due_at']}. Call or e-mail them, then log the touch on the lead."
    )


def _alert_text(context: dict[str, Any]) -> str:
    return (
        f"*Escalation:* <{context['link']}|{slack_escape(context['label'])}>, assigned to "
        f"{slack_escape(context['rep_name'])}, has not been touched yet.\n"
        f"Why: {slack_escape(context['reason'])}.\nThe first touch was due {context['due_at']}."
    )
