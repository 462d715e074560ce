"""``manage.py apikey create NAME [--scope SCOPE ...]`` | ``apikey list`` | ``apikey revoke NAME``."""

from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from routing.models import ApiKey, ApiScope
from routing.services import apikey_create, apikey_revoke


class Command(BaseCommand):
    help = "Create, list and revoke the API keys intake sources use to post leads."

    def add_arguments(self, parser: CommandParser) -> None:
        actions = parser.add_subparsers(dest="action", required=True)
        create = actions.add_parser("create", help="Create a key and print it once.")
        create.add_argument("name", help="The intake source, such as 'Website demo form'.")
        create.add_argument(
            "--scope",
            action="append",
            dest="scopes",
            choices=ApiScope.values,
            metavar="SCOPE",
            help=f"What the key may do; repeat for several. One of: {', '.join(ApiScope.values)}. "
            "Default: leads:write only.",
        )
        actions.add_parser("list", help="List keys with their prefix, last use and state.")
        revoke = actions.add_parser("revoke", help="Revoke a key by name.")
        revoke.add_argument("name")

    def handle(self, *args: Any, action: str, **options: Any) -> None:
        if action == "create":
            try:
                api_key, raw_key = apikey_create(name=options["name"], scopes=options["scopes"])
            except ValidationError as error:
                raise CommandError("; ".join(error.messages)) from error
            # The raw key alone on stdout, so scripts can capture it; the advice goes to stderr.
            self.stdout.write(raw_key)
            self.stderr.write(
                f"Created API key '{api_key.name}' ({api_key.prefix}…) with the scopes {', '.join(api_key.scopes)}. "
                "It is shown only now: store it in the "
                "intake source's secrets and send it as 'Authorization: Token <key>'."
            )
        elif action == "list":
            for api_key in ApiKey.objects.all():
                state = f"revoked {api_key.revoked_at:%Y-%m-%d %H:%M}" if api_key.revoked_at else "active"
                used = f"{api_key.last_used_at:%Y-%m-%d %H:%M}" if api_key.last_used_at else "never"
                scopes = ", ".join(api_key.scopes) or "no scopes"
                self.stdout.write(f"{api_key.name}\t{api_key.prefix}…\t{scopes}\tlast used {used}\t{state}")
        elif action == "revoke":
            keys = ApiKey.objects.filter(name=options["name"])
            if not keys.exists():
                raise CommandError(f"There is no API key named '{options['name']}'.")
            revoked = apikey_revoke(keys=keys)
            self.stdout.write("Revoked." if revoked else "That key was already revoked.")
