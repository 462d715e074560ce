"""Celery tasks for SLAs. Each calls one service and is safe to run twice or at once."""

from celery import shared_task

from sla.sweep import escalations_sweep


@shared_task(ignore_result=True)
def sweep_escalations() -> None:
    """Fire the escalation steps that are due, in bounded batches."""
    escalations_sweep()
