"""Writes for the routing app. Routing itself arrives with the routing engine."""

import hashlib
import hmac
import secrets
from datetime import datetime, timedelta

from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from routing.models import ApiKey, WorkerHeartbeat


def heartbeat_record(*, name: str, hostname: str = "", now: datetime | None = None) -> WorkerHeartbeat:
    """Stamp the named heartbeat with the current time. Safe to run twice."""
    heartbeat, _ = WorkerHeartbeat.objects.update_or_create(
        name=name, defaults={"last_seen_at": now or timezone.now(), "hostname": hostname}
    )
    return heartbeat


# --- API keys ---------------------------------------------------------------------------------------

API_KEY_PREFIX_LENGTH = 12
# last_used_at is an operator hint, not an audit log: write it at most this often per key.
API_KEY_TOUCH_INTERVAL = timedelta(minutes=1)


def _api_key_hash(raw_key: str) -> str:
    return hashlib.sha256(raw_key.encode()).hexdigest()


@transaction.atomic
def apikey_create(*, name: str, by: User | None = None, raw_key: str | None = None) -> tuple[ApiKey, str]:
    """Create an API key for an intake source and return it with the raw key.

    The raw key is shown once and never stored; only its hash is. Raises
    ValidationError when the name is taken or empty. ``raw_key`` is for the demo
    organisation's published key only; real keys are always generated.
    """
    raw_key = raw_key or "lr_" + secrets.token_urlsafe(32)
    api_key = ApiKey(
        name=name.strip(),
        prefix=raw_key[:API_KEY_PREFIX_LENGTH],
        key_hash=_api_key_hash(raw_key),
        created_by=by if by is not None and by.pk else None,
    )
    api_key.full_clean()
    api_key.save()
    return api_key, raw_key


def apikey_revoke(*, keys: QuerySet[ApiKey], now: datetime | None = None) -> int:
    """Revoke the given keys at once; requests with them fail from now on. Returns how many were revoked."""
    return keys.filter(revoked_at__isnull=True).update(revoked_at=now or timezone.now())


def apikey_authenticate(*, raw_key: str, now: datetime | None = None) -> ApiKey | None:
    """The usable key matching ``raw_key``, or None. Side effect: stamps last_used_at (at most once a minute)."""
    now = now or timezone.now()
    candidate = ApiKey.objects.filter(prefix=raw_key[:API_KEY_PREFIX_LENGTH]).first()
    if candidate is None or not hmac.compare_digest(candidate.key_hash, _api_key_hash(raw_key)):
        return None
    if candidate.is_revoked:
        return candidate
    if candidate.last_used_at is None or now - candidate.last_used_at >= API_KEY_TOUCH_INTERVAL:
        ApiKey.objects.filter(pk=candidate.pk).update(last_used_at=now)
        candidate.last_used_at = now
    return candidate
