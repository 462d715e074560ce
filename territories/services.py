"""Writes to the coverage model.

Admin actions and forms, the CSV import and any script call these, so the rules
for creating reps, taking them out of rotation and replacing criteria or domains
live in one place. Every save goes through the model, so each change lands in
the change history with the user of the current request.
"""

import copy
from collections.abc import Iterable, Mapping
from datetime import datetime

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractUser
from django.core.exceptions import ValidationError
from django.db import transaction

from territories import validators
from territories.models import Account, AccountDomain, OutOfOffice, Rep, Skill, Territory, TerritoryCriterion

User = get_user_model()

# The CSV columns and coverage-file keys for each criterion kind.
CRITERION_COLUMNS: dict[str, str] = {
    "countries": TerritoryCriterion.Kind.COUNTRY,
    "subdivisions": TerritoryCriterion.Kind.SUBDIVISION,
    "postal_prefixes": TerritoryCriterion.Kind.POSTAL_PREFIX,
    "industries": TerritoryCriterion.Kind.INDUSTRY,
    "size_bands": TerritoryCriterion.Kind.SIZE_BAND,
    "product_lines": TerritoryCriterion.Kind.PRODUCT_LINE,
}


# --- Reps ------------------------------------------------------------------------------------------------------


def rep_user_validate(
    *,
    username: str,
    email: str,
    first_name: str = "",
    last_name: str = "",
    user: AbstractUser | None = None,
) -> None:
    """Raise ValidationError (keyed by field) when these identity values cannot be saved.

    ``user`` is the rep's existing user when editing, or None for a new rep.
    Writes nothing.
    """
    errors: dict[str, list[str]] = {}
    if not email.strip():
        errors["email"] = ["Enter the rep's e-mail address: lead notifications go there."]
    # Validate a copy, so a refused edit leaves the caller's user untouched.
    candidate = copy.copy(user) if user is not None else User()
    candidate.username = username
    candidate.email, candidate.first_name, candidate.last_name = email.strip(), first_name.strip(), last_name.strip()
    try:
        candidate.full_clean(exclude=["password", *errors])
    except ValidationError as error:
        for field, messages in error.message_dict.items():
            errors.setdefault(field, []).extend(messages)
    if "username" not in errors and user is None and User.objects.filter(username__iexact=username).exists():
        errors["username"] = [
            f"A user named “{username}” exists already; choose another username or edit that person's rep."
        ]
    if user is not None and (user.is_staff or user.is_superuser) and email.strip() != user.email:
        # An admin user's e-mail is where their password reset goes; changing it here would hand over the account.
        errors["email"] = [f"{user.username} has admin access; only an administrator can change their e-mail address."]
    if errors:
        raise ValidationError(errors)


@transaction.atomic
def rep_create(
    *,
    username: str,
    email: str,
    first_name: str = "",
    last_name: str = "",
    rep: Rep | None = None,
    skills: Iterable[Skill] | None = None,
) -> Rep:
    """Create a user and the rep profile that belongs to it.

    ``rep`` carries the profile fields (team, manager, capacity, time zone) as an
    unsaved instance, as an admin form or an import builds it; it is saved in
    place and returned. Without it the rep gets the default profile.

    Side effects: inserts a user without a usable password (an administrator sets
    one, or single sign-on signs them in) and not staff, so the rep cannot open
    the admin; inserts the rep; sets its skills when given. Raises
    ValidationError, keyed by field, before writing anything.
    """
    rep = rep if rep is not None else Rep()
    if rep.pk is not None:
        raise ValueError("rep_create saves a new rep; use rep_update for an existing one.")
    rep_user_validate(username=username, email=email, first_name=first_name, last_name=last_name)
    rep.full_clean(exclude=["user"])
    user = User(username=username, email=email.strip(), first_name=first_name.strip(), last_name=last_name.strip())
    user.set_unusable_password()
    user.save()
    rep.user = user
    rep.save()
    if skills is not None:
        rep.skills.set(skills)
    return rep


@transaction.atomic
def rep_update(*, rep: Rep, email: str, first_name: str, last_name: str) -> Rep:
    """Save ``rep`` with the profile fields set on it, and its user's e-mail and name.

    Side effects: updates the rep and its user. The username never changes here:
    it is the key imports and the coverage file use. Raises ValidationError,
    keyed by field, before writing anything.
    """
    user = rep.user
    rep_user_validate(username=user.username, email=email, first_name=first_name, last_name=last_name, user=user)
    rep.full_clean()
    user.email, user.first_name, user.last_name = email.strip(), first_name.strip(), last_name.strip()
    user.save(update_fields=["email", "first_name", "last_name"])
    rep.save()
    return rep


def _reps_set_active(reps: Iterable[Rep], active: bool) -> int:
    changed = 0
    for rep in reps:
        if rep.active != active:
            rep.active = active
            # One save per rep (not a bulk update) so each change lands in the change history.
            rep.save(update_fields=["active", "updated_at"])
            changed += 1
    return changed


@transaction.atomic
def reps_activate(*, reps: Iterable[Rep]) -> int:
    """Put reps back into rotation. Returns how many were inactive.

    Side effects: sets ``active`` on each rep that was inactive; routing offers
    them new leads again from the next lead on.
    """
    return _reps_set_active(reps, True)


@transaction.atomic
def reps_deactivate(*, reps: Iterable[Rep]) -> int:
    """Take reps out of rotation (a departure, a long leave). Returns how many were active.

    Side effects: clears ``active`` on each rep that was active, so routing gives
    them no new leads. Their open leads stay with them until a manager
    reassigns them, and their user can still sign in to work those leads.
    """
    return _reps_set_active(reps, False)


@transaction.atomic
def reps_set_out_of_office(
    *, reps: Iterable[Rep], starts_at: datetime, ends_at: datetime, reason: str = ""
) -> list[OutOfOffice]:
    """Record the same out-of-office period for each rep.

    Side effects: inserts one out-of-office period per rep; routing skips them
    from ``starts_at`` until ``ends_at``. Raises ValidationError before writing
    anything when the period does not end after it starts.
    """
    if ends_at <= starts_at:
        raise ValidationError({"ends_at": "The period must end after it starts."})
    periods = []
    for rep in reps:
        period = OutOfOffice(rep=rep, starts_at=starts_at, ends_at=ends_at, reason=reason.strip())
        period.full_clean()
        period.save()
        periods.append(period)
    return periods


# --- Territories -------------------------------------------------------------------------------------------------


def territory_criteria_clean(*, criteria: Mapping[str, Iterable[str]]) -> dict[str, list[str]]:
    """Normalize and check criterion values, by kind; raise ValidationError keyed by kind.

    Values are stripped, written the way routing compares them (country,
    subdivision and postal prefix in capitals without spaces) and de-duplicated.
    Writes nothing.
    """
    cleaned: dict[str, list[str]] = {}
    errors: dict[str, list[str]] = {}
    for kind, values in criteria.items():
        if kind not in TerritoryCriterion.Kind.values:
            errors.setdefault(kind, []).append(f"{kind} is not a criterion kind.")
            continue
        cleaned[kind] = []
        for raw in values:
            criterion = TerritoryCriterion(kind=kind, value=raw)
            try:
                criterion.clean()
            except ValidationError as error:
                errors.setdefault(kind, []).extend(error.messages)
                continue
            if criterion.value and criterion.value not in cleaned[kind]:
                cleaned[kind].append(criterion.value)
    if errors:
        raise ValidationError(errors)
    return cleaned


@transaction.atomic
def territory_set_criteria(*, territory: Territory, criteria: Mapping[str, Iterable[str]]) -> None:
    """Make the territory's criteria of each given kind exactly ``criteria[kind]``.

    Kinds not in ``criteria`` are left alone, so a file with only a countries
    column does not wipe size bands. Side effects: deletes criteria rows no
    longer listed and inserts new ones (each lands in the change history).
    Raises ValidationError keyed by kind before writing anything.
    """
    wanted = territory_criteria_clean(criteria=criteria)
    existing = territory.criteria.filter(kind__in=wanted)
    present = set()
    for criterion in existing:
        if criterion.value in wanted[criterion.kind]:
            present.add((criterion.kind, criterion.value))
        else:
            criterion.delete()
    for kind, values in wanted.items():
        for value in values:
            if (kind, value) not in present:
                TerritoryCriterion.objects.create(territory=territory, kind=kind, value=value)


# --- Accounts ----------------------------------------------------------------------------------------------------


def account_domains_clean(*, account: Account, domains: Iterable[str]) -> list[str]:
    """Normalize domains as people paste them and check each is free; raise ValidationError.

    ``https://www.Acme.com/about`` becomes ``acme.com``. A domain that belongs to
    another account is refused, since a domain maps to one account. Writes nothing.
    """
    cleaned: list[str] = []
    errors: list[str] = []
    for raw in domains:
        if not raw.strip():
            continue
        domain = validators.normalize_domain(raw)
        try:
            validators.validate_domain(domain)
        except ValidationError as error:
            errors.append(f"“{raw.strip()}”: " + " ".join(error.messages))
            continue
        if domain not in cleaned:
            cleaned.append(domain)
    taken = AccountDomain.objects.filter(domain__in=cleaned).select_related("account")
    if account.pk is not None:
        taken = taken.exclude(account=account)
    for row in taken:
        errors.append(f"{row.domain} belongs to the account “{row.account}”; remove it there first.")
    if errors:
        raise ValidationError(errors)
    return cleaned


@transaction.atomic
def account_set_domains(*, account: Account, domains: Iterable[str]) -> list[str]:
    """Make the account's domains exactly ``domains`` (normalized). Returns the domains kept.

    Side effects: deletes domain rows no longer listed and inserts new ones (each
    lands in the change history). Raises ValidationError before writing anything.
    """
    wanted = account_domains_clean(account=account, domains=domains)
    for row in account.domains.all():
        if row.domain in wanted:
            wanted.remove(row.domain)
            continue
        row.delete()
    for domain in wanted:
        AccountDomain.objects.create(account=account, domain=domain)
    return list(account.domains.values_list("domain", flat=True))
