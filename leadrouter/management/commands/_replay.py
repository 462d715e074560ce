"""``manage.py coverage replay``: what a draft, a version or a YAML file would have done to past leads.

    manage.py coverage replay FILE_OR_DRAFT [--since DAYS] [--source SOURCE] [--queue NAME] [--json]

Kept apart from the other ``coverage`` actions (``add_parser`` and ``run`` are all the command calls).
See docs/replay.md.
"""

from __future__ import annotations

import argparse
import json
from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from leadrouter.replay import ReplayError, ReplayFilters, coverage_replay, replay_source
from routing.models import Queue


def add_parser(actions: Any) -> None:
    replay = actions.add_parser(
        "replay",
        help="Replay a draft, a version or a YAML file over past leads and show what would have changed.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    replay.add_argument(
        "source",
        help="A YAML file, a draft's name, 'version N' (or vN) for a numbered version, or 'live'.",
    )
    replay.add_argument("--since", type=int, default=30, metavar="DAYS", help="Leads routed in the last DAYS days.")
    replay.add_argument("--source", dest="lead_source", default="", help="Only leads of this source.")
    replay.add_argument("--queue", default="", help="Only leads routing placed in this queue (by name).")
    replay.add_argument("--json", action="store_true", help="Print the whole report as JSON.")


def run(command: BaseCommand, options: dict[str, Any]) -> None:
    if options["since"] < 1 or options["since"] > 3660:
        raise CommandError("--since is a number of days from 1 to 3660.")
    queue_id = None
    if options["queue"]:
        queue_id = Queue.objects.filter(name=options["queue"]).values_list("pk", flat=True).first()
        if queue_id is None:
            raise CommandError(f"There is no queue {options['queue']!r}.")
    now = timezone.now()
    filters = ReplayFilters(
        since=now - timedelta(days=options["since"]), until=now, source=options["lead_source"], queue_id=queue_id
    )
    try:
        replayed = replay_source(options["source"])
        report = coverage_replay(document=replayed.document, filters=filters, label=replayed.label)
    except ReplayError as error:
        for message in error.errors:
            command.stderr.write(f"{message[0]}: {message[1]}" if message[0] else message[1])
        raise CommandError(f"{options['source']}: cannot be replayed; nothing was written.") from error
    if options["json"]:
        command.stdout.write(json.dumps(report, indent=2, ensure_ascii=False))
        return
    command.stdout.write(render(report))


def render(report: dict[str, Any]) -> str:
    """The report as text: totals, per rep and per queue, fairness, then the leads that change hands."""
    lines = [
        f"Replayed {report['replayed']} over {report['leads']} leads routed "
        f"{report['filters']['since'][:16]} – {report['filters']['until'][:16]}: "
        f"{report['changed_count']} would change.",
    ]
    if report["unexplained"] != report["changed_count"]:
        lines.append(f"{report['changed_count'] - report['unexplained']} of them say why they went as they did then.")
    lines += ["", f"{'rep':<24}{'before':>8}{'after':>8}{'change':>8}{'off hours':>11}{'peak open':>11}"]
    for rep in report["by_rep"]:
        past = "  past capacity" if rep["past_capacity_after"] else ""
        lines.append(
            f"{rep['rep']:<24}{rep['before']:>8}{rep['after']:>8}{rep['change']:>+8}"
            f"{rep['off_hours_after']:>11}{rep['peak_open_after']:>7}/{rep['max_open_leads'] or '-':<3}{past}"
        )
    lines += ["", f"{'queue':<32}{'before':>8}{'after':>8}{'change':>8}"]
    for queue in report["by_queue"]:
        lines.append(f"{queue['queue']:<32}{queue['before']:>8}{queue['after']:>8}{queue['change']:>+8}")
    fairness = report["fairness"]
    lines += [
        "",
        f"Fairness over reps: spread {fairness['before']['spread']} → {fairness['after']['spread']}, "
        f"Gini {fairness['before']['gini']:.3f} → {fairness['after']['gini']:.3f}.",
        f"Off hours: {report['off_hours']['before']} → {report['off_hours']['after']} leads.",
    ]
    if report["changed"]:
        lines += ["", "Leads that change hands:"]
        for line in report["changed"][:50]:
            before, after = line["before"], line["after"]
            why = f"  (then: {line['why']})" if line["why"] else ""
            lines.append(f"  lead {line['lead']}: {_who(before)} → {_who(after)}, decided by {line['decided_by']}{why}")
        if report["changed_count"] > 50:
            lines.append(f"  … and {report['changed_count'] - 50} more (--json lists them all).")
    return "\n".join(lines)


def _who(side: dict[str, Any]) -> str:
    if side["outcome"] == "assigned":
        return f"{side['rep']}" + (f" ({side['queue']})" if side["queue"] else "")
    if side["outcome"] == "queued":
        return f"held in {side['queue']}"
    return str(side["outcome"])
