"""The admin home's split of the app list: the coverage model and the work on it first, the machinery below."""

from typing import Any

from django import template

from routing.access import may_see_reports

register = template.Library()

# Apps RevOps rarely open: the beat schedule's tables and the login lock-outs. Listed under "System".
SYSTEM_APPS = frozenset({"django_celery_beat", "axes"})


@register.filter
def work_apps(app_list: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [app for app in app_list if app.get("app_label") not in SYSTEM_APPS]


@register.filter
def system_apps(app_list: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [app for app in app_list if app.get("app_label") in SYSTEM_APPS]


@register.filter
def sees_work_pages(user: Any) -> bool:
    """RevOps and managers work in the team board, escalations and reports; other staff would get a 404."""
    return may_see_reports(user=user)
