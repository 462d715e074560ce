from django.apps import AppConfig


class SlaConfig(AppConfig):
    name = "sla"
    verbose_name = "SLAs and escalations"

    def ready(self) -> None:
        from routing.ownership import clock_starter_register, clock_stopper_register
        from sla import models, notices
        from sla.clocks import clocks_on_new_owner, clocks_stop
        from territories.coverage_version import coverage_model_track

        # Clock starts keep the policies and calendars between batches (sla.services._sla_setup) and reload
        # them when the coverage version moves, as routing does with its own coverage copy.
        for model in (
            models.SlaPolicy,
            models.EscalationStep,
            models.BusinessCalendar,
            models.CalendarHours,
            models.ClosedDate,
        ):
            coverage_model_track(model)

        # Every ownership change starts the new owner's first-touch clock through this one call, and every
        # close (or hand-back) stops it and resolves the lead's open escalations through the other.
        clock_starter_register(clocks_on_new_owner)
        clock_stopper_register(clocks_stop)
        # The notification outbox renders the SLA ladder's reminders and alerts with this app's templates.
        notices.register()
