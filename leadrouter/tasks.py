"""Tasks that span the apps. Beat runs ``publish_due_drafts`` every minute (``CELERY_BEAT_SCHEDULE``)."""

from celery import shared_task

from leadrouter.coverage import versions


@shared_task(ignore_result=True)
def publish_due_drafts() -> int:
    """Publish the coverage drafts whose scheduled time has come; returns how many were published."""
    return len(versions.publish_due_drafts())
