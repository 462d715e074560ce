"""The role groups the product ships with.

RevOps maintain the coverage model in admin: they get every permission on the
coverage, routing and SLA models and on the beat schedule. Reps and managers do
not use the admin; their pages scope what they see by who they are.
"""

from typing import Any

from django.contrib.auth.models import Group, Permission

REVOPS_GROUP = "RevOps"
REVOPS_APPS = ("territories", "routing", "sla", "django_celery_beat")
# What makes a user RevOps on the pages (``territories.access.is_revops``): seeing every lead, as in admin.
# The RevOps group holds it with every other permission of ``REVOPS_APPS``.
REVOPS_PERMISSION = "routing.view_lead"


def ensure_role_groups(**kwargs: Any) -> Group:
    """Create or refresh the RevOps group with all permissions of ``REVOPS_APPS``. Idempotent."""
    group, _ = Group.objects.get_or_create(name=REVOPS_GROUP)
    permissions = Permission.objects.filter(content_type__app_label__in=REVOPS_APPS)
    group.permissions.add(*permissions)
    return group
