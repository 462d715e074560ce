from django.apps import AppConfig


class TerritoriesConfig(AppConfig):
    name = "territories"
    verbose_name = "Coverage: teams, reps, territories, accounts"

    def ready(self) -> None:
        from django.db.models.signals import post_migrate

        from territories.roles import ensure_role_groups

        # Role groups need the permission rows, which exist only after migrate.
        post_migrate.connect(ensure_role_groups, sender=self)
