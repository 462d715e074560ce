"""What every server-rendered page shares: the shell around it (which links ``base.html`` shows) and how it
words a duration.

Here, in the lowest app that can decide the links (they follow ``routing.access``), so that the pages of routing
and of the apps above it (sla, the project's own pages in ``leadrouter``) all take them from one place.
"""

from typing import Any

from django.http import HttpRequest

from routing.access import roles_of


def shell(request: HttpRequest, *, current: str = "") -> dict[str, Any]:
    """What the page shell (``base.html``) shows beyond the user: which links, and which is the current page.

    Links follow ``routing.access``: a rep gets their leads; RevOps and anyone who manages (a team, direct
    reports, a delegated queue) the team board, the escalations and the reports. Works as a template context
    processor too; each page view merges it into its context for now.
    """
    roles = roles_of(request.user)
    manages = roles.is_revops or roles.manages
    return {
        "shell": {
            "show_my_leads": roles.is_rep,
            "show_team": manages,
            "show_escalations": manages,
            "show_reports": manages,
            "current": current,
        }
    }


def duration_label(seconds: float) -> str:
    """A short human duration: "45 s" is too precise for a manager, so "<1 min", "12 min", "3 h 5 min", "2 d 4 h"."""
    minutes = int(abs(seconds) // 60)
    if minutes < 1:
        return "<1 min"
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h" if hours else f"{days} d"
