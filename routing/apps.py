from django.apps import AppConfig


class RoutingConfig(AppConfig):
    name = "routing"
    verbose_name = "Routing: queues, leads, assignments"

    def ready(self) -> None:
        from routing import models
        from territories.coverage_version import coverage_model_track

        # The coverage model workers cache (routing/dispatch.py:CoverageCache) reads these rows. The
        # round-robin pointer is read fresh for every batch, so moving it is not a coverage change.
        coverage_model_track(models.Queue, ignore_fields={"rr_pointer", "updated_at"})
        for model in (models.QueueMembership, models.Rule, models.ScoringRule, models.ScoringThresholds):
            coverage_model_track(model)
