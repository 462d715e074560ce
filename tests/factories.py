"""factory-boy factories for every model. Defaults build a valid, minimal row."""

import datetime as dt
from typing import Any, cast

import factory
from django.contrib.auth import get_user_model
from django.utils import timezone
from factory.django import DjangoModelFactory

from routing.models import Assignment, Lead, Queue, QueueMembership, Rule
from routing.ownership import loads_recount
from territories.models import (
    Account,
    AccountDomain,
    Opportunity,
    OutOfOffice,
    ProductLine,
    Rep,
    Skill,
    Team,
    Territory,
    TerritoryCriterion,
    WorkingHours,
)

PASSWORD = "correct-horse-battery"


class UserFactory(DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.com")
    first_name = factory.Faker("first_name")
    last_name = factory.Faker("last_name")
    password = factory.django.Password(PASSWORD)


class SkillFactory(DjangoModelFactory):
    class Meta:
        model = Skill
        django_get_or_create = ("code",)

    code = factory.Sequence(lambda n: f"skill-{n}")
    name = factory.LazyAttribute(lambda s: s.code.replace("-", " ").title())
    kind = Skill.Kind.OTHER


class ProductLineFactory(DjangoModelFactory):
    class Meta:
        model = ProductLine
        django_get_or_create = ("code",)

    code = factory.Sequence(lambda n: f"product-{n}")
    name = factory.LazyAttribute(lambda p: p.code.title())


class TeamFactory(DjangoModelFactory):
    class Meta:
        model = Team
        django_get_or_create = ("name",)

    name = factory.Sequence(lambda n: f"Team {n}")


class RepFactory(DjangoModelFactory):
    class Meta:
        model = Rep
        skip_postgeneration_save = True

    user = factory.SubFactory(UserFactory)
    team = factory.SubFactory(TeamFactory)
    time_zone = "Europe/Berlin"
    max_open_leads = 20

    @factory.post_generation
    def skills(self, create, extracted, **kwargs):
        if create and extracted:
            self.skills.set(extracted)


class WorkingHoursFactory(DjangoModelFactory):
    class Meta:
        model = WorkingHours

    rep = factory.SubFactory(RepFactory)
    weekday = WorkingHours.Weekday.MONDAY
    start = dt.time(9, 0)
    end = dt.time(17, 0)


class OutOfOfficeFactory(DjangoModelFactory):
    class Meta:
        model = OutOfOffice

    rep = factory.SubFactory(RepFactory)
    starts_at = factory.LazyFunction(timezone.now)
    ends_at = factory.LazyAttribute(lambda o: o.starts_at + dt.timedelta(days=7))
    reason = "Vacation"


class QueueFactory(DjangoModelFactory):
    class Meta:
        model = Queue
        django_get_or_create = ("name",)

    name = factory.Sequence(lambda n: f"Queue {n}")
    method = Queue.Method.ROUND_ROBIN


class QueueMembershipFactory(DjangoModelFactory):
    class Meta:
        model = QueueMembership

    queue = factory.SubFactory(QueueFactory)
    rep = factory.SubFactory(RepFactory)
    weight = 1
    position = factory.Sequence(lambda n: n)


class TerritoryFactory(DjangoModelFactory):
    class Meta:
        model = Territory
        django_get_or_create = ("name",)

    name = factory.Sequence(lambda n: f"Territory {n}")


class TerritoryCriterionFactory(DjangoModelFactory):
    class Meta:
        model = TerritoryCriterion

    territory = factory.SubFactory(TerritoryFactory)
    kind = TerritoryCriterion.Kind.COUNTRY
    value = "DE"


class AccountFactory(DjangoModelFactory):
    class Meta:
        model = Account
        django_get_or_create = ("name",)

    name = factory.Sequence(lambda n: f"Account {n} GmbH")
    country = "DE"


class AccountDomainFactory(DjangoModelFactory):
    class Meta:
        model = AccountDomain

    account = factory.SubFactory(AccountFactory)
    domain = factory.Sequence(lambda n: f"account{n}.example")


class OpportunityFactory(DjangoModelFactory):
    class Meta:
        model = Opportunity

    account = factory.SubFactory(AccountFactory)
    name = factory.Sequence(lambda n: f"Opportunity {n}")
    stage = Opportunity.Stage.OPEN


class LeadFactory(DjangoModelFactory):
    class Meta:
        model = Lead

    email = factory.Sequence(lambda n: f"lead{n}@prospect{n}.example")
    email_domain = factory.LazyAttribute(lambda lead: lead.email.split("@", 1)[1])
    first_name = factory.Faker("first_name")
    last_name = factory.Faker("last_name")
    company = factory.Sequence(lambda n: f"Prospect {n} AG")
    country = "DE"
    source = "web"
    raw_payload = factory.LazyAttribute(lambda lead: {"email": lead.email, "company": lead.company})

    @classmethod
    def _create(cls, model_class: Any, *args: Any, **kwargs: Any) -> Any:
        # A lead made here with an owner skips the ownership layer: bring its owner's load counter in step.
        lead = super()._create(model_class, *args, **kwargs)
        if lead.owner_id is not None:
            loads_recount(now=timezone.now(), fix=True)
        return lead


class AssignmentFactory(DjangoModelFactory):
    class Meta:
        model = Assignment

    lead = factory.SubFactory(LeadFactory)
    rep = factory.SubFactory(RepFactory)
    assigned_at = factory.LazyFunction(timezone.now)

    @classmethod
    def _create(cls, model_class: Any, *args: Any, **kwargs: Any) -> Any:
        # History made here skips the ownership layer: bring the rep's today count in step.
        assignment = super()._create(model_class, *args, **kwargs)
        if assignment.rep_id is not None:
            loads_recount(now=timezone.now(), fix=True)
        return assignment


def dach_coverage() -> Queue:
    """The smallest coverage that routes a German lead to a rep: a "DACH Inbound" queue with anna and ben
    (UTC, no working hours: always on), a DACH territory on country DE, and one rule routing by territory; and
    the catch-all every model has (a migration makes it, but a transactional test's flush removes it)."""
    Queue.objects.get_or_create(is_catch_all=True, defaults={"name": "Catch-all"})
    queue = cast(Queue, QueueFactory(name="DACH Inbound"))  # factory-boy types the call as the factory
    for position, username in enumerate(("anna", "ben")):
        rep = RepFactory(user=UserFactory(username=username, email=f"{username}@seller.example"), time_zone="UTC")
        QueueMembershipFactory(queue=queue, rep=rep, position=position)
    territory = TerritoryFactory(name="DACH", queue=queue)
    TerritoryCriterionFactory(territory=territory, kind="country", value="DE")
    Rule.objects.create(name="By territory", position=10, action=Rule.Action.TERRITORY)
    return queue
