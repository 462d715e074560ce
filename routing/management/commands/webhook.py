"""``manage.py webhook create NAME URL --event EVENT ... [--secret SECRET]`` | ``webhook list``."""

from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from routing.models import Delivery, EventType, WebhookSubscription


class Command(BaseCommand):
    help = "Create and list webhook subscriptions: signed POSTs of lead events to a URL."

    def add_arguments(self, parser: CommandParser) -> None:
        actions = parser.add_subparsers(dest="action", required=True)
        create = actions.add_parser("create", help="Create a subscription; print its id and secret once.")
        create.add_argument("name", help="Who receives it, such as 'Data warehouse'.")
        create.add_argument("url", help="Where the events are POSTed (http or https).")
        create.add_argument(
            "--event",
            action="append",
            dest="events",
            required=True,
            choices=EventType.values,
            metavar="EVENT",
            help=f"An event to send; repeat for several. One of: {', '.join(EventType.values)}.",
        )
        create.add_argument("--secret", help="The signing secret; default: a new random one.")
        actions.add_parser("list", help="List subscriptions with their events and undelivered count.")

    def handle(self, *args: Any, action: str, **options: Any) -> None:
        if action == "create":
            subscription = WebhookSubscription(
                name=options["name"], url=options["url"], events=list(dict.fromkeys(options["events"]))
            )
            if options["secret"]:
                subscription.secret = options["secret"]
            try:
                subscription.full_clean()
            except ValidationError as error:
                raise CommandError("; ".join(f"{k}: {' '.join(v)}" for k, v in error.message_dict.items())) from error
            if not subscription.url.lower().startswith(("http://", "https://")):
                raise CommandError("url: only http and https URLs are called.")
            subscription.save()
            self.stdout.write(f"id: {subscription.pk}\nsecret: {subscription.secret}")
            self.stderr.write(
                f"Created webhook '{subscription.name}' for {', '.join(subscription.events)}. The secret is shown "
                "only now: store it with the receiver, which checks X-LeadRouter-Signature with it."
            )
        elif action == "list":
            for subscription in WebhookSubscription.objects.all():
                waiting = Delivery.objects.filter(subscription=subscription, status__in=Delivery.UNDONE).count()
                dead = Delivery.objects.filter(subscription=subscription, status=Delivery.Status.DEAD).count()
                state = "active" if subscription.active else "inactive"
                self.stdout.write(
                    f"{subscription.pk}\t{subscription.name}\t{subscription.url}\t{','.join(subscription.events)}"
                    f"\t{state}\t{waiting} waiting, {dead} dead"
                )
