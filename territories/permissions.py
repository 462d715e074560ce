"""Object-level grants for regional RevOps, with django-guardian.

RevOps in the *RevOps* group hold model permissions and work on every row. A
regional RevOps user is staff without them: RevOps grant them ``view`` or
``change`` on particular territories, queues or rules in admin (the *Object
permissions* button on a row). A grant on a territory covers its whole subtree.
They then see and edit only those rows; adding and deleting stay with RevOps.
"""

from __future__ import annotations

from typing import Any

from django.db import models
from django.http import HttpRequest
from guardian.shortcuts import get_objects_for_user

from territories.models import Territory


def granted_ids(user: Any, model: type[models.Model], action: str) -> set[int] | None:
    """The ids of ``model`` rows ``user`` may ``action`` ("view" or "change"); None means every row
    (a model-level permission). "view" is also granted by "change"."""
    opts = model._meta
    perm = f"{opts.app_label}.{action}_{opts.model_name}"
    if not user.is_active:
        return set()
    if user.is_superuser or user.has_perm(perm):
        return None
    perms = [perm] if action == "change" else [perm, f"{opts.app_label}.change_{opts.model_name}"]
    rows = get_objects_for_user(user, perms, klass=model, any_perm=True, accept_global_perms=False)
    ids = set(rows.values_list("pk", flat=True))
    if model is Territory and ids:
        ids = territory_subtree_ids(ids)
    return ids


def territory_subtree_ids(roots: set[int]) -> set[int]:
    """``roots`` and every territory below them."""
    children: dict[int | None, list[int]] = {}
    for pk, parent_id in Territory.objects.values_list("pk", "parent_id"):
        children.setdefault(parent_id, []).append(pk)
    found, stack = set(), list(roots)
    while stack:
        pk = stack.pop()
        if pk not in found:
            found.add(pk)
            stack.extend(children.get(pk, []))
    return found


def request_granted_ids(request: HttpRequest, model: type[models.Model], action: str) -> set[int] | None:
    """``granted_ids`` for the requesting user, computed once per request and model."""
    cache: dict[tuple[str, str], set[int] | None] = request.__dict__.setdefault("_granted_ids", {})
    key = (model._meta.label, action)
    if key not in cache:
        cache[key] = granted_ids(request.user, model, action)
    return cache[key]
