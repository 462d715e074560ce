from django.apps import AppConfig


class TerritoriesConfig(AppConfig):
    name = "territories"
    verbose_name = "Coverage: teams, reps, territories, accounts"

    def ready(self) -> None:
        from django.db.models.signals import post_migrate

        from territories.roles import ensure_role_groups

        # Role groups need the permission rows, which exist only after migrate.
        post_migrate.connect(ensure_role_groups, sender=self)

        from django.contrib.auth import get_user_model

        from territories import models
        from territories.coverage_version import coverage_model_track

        # The coverage model workers cache (routing/dispatch.py:CoverageCache) reads these rows.
        for model in (
            models.Rep,
            models.Skill,
            models.WorkingHours,
            models.OutOfOffice,
            models.Territory,
            models.TerritoryCriterion,
            models.Account,
            models.AccountDomain,
        ):
            coverage_model_track(model)
        # Receipts name reps by username; a login only stamps last_login.
        coverage_model_track(get_user_model(), ignore_fields={"last_login"})
