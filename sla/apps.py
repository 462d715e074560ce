from django.apps import AppConfig


class SlaConfig(AppConfig):
    name = "sla"
    verbose_name = "SLAs and escalations"

    def ready(self) -> None:
        from routing.ownership import clock_starter_register, clock_stopper_register
        from sla import notices
        from sla.clocks import clocks_on_new_owner, clocks_stop

        # Every ownership change starts the new owner's first-touch clock through this one call, and every
        # close (or hand-back) stops it and resolves the lead's open escalations through the other.
        clock_starter_register(clocks_on_new_owner)
        clock_stopper_register(clocks_stop)
        # The notification outbox renders the SLA ladder's reminders and alerts with this app's templates.
        notices.register()
