"""Load the demo organisation and its demo logins into the database."""

from dataclasses import dataclass
from pathlib import Path

from django.contrib.auth import get_user_model
from django.db import transaction

from leadrouter.coverage import apply_import, load_yaml
from routing.models import ApiKey, Lead
from routing.services import apikey_create
from territories.models import Account, Profile, Rep, Team, Territory
from territories.roles import ensure_role_groups

DEMO_FILE = Path(__file__).with_name("coverage.yaml")
DEMO_PASSWORD = "demo"
# The demo intake source's key, published like the demo password so the README's curl works.
# Demo only: real keys come from ``manage.py apikey create NAME`` and are never shown twice.
DEMO_API_KEY = "lr_demo_website_form_key"
DEMO_API_KEY_NAME = "Website demo form (demo)"
# It posts leads and reads them back with their receipts, so the README's second curl shows where a lead went.
DEMO_API_KEY_SCOPES = ("leads:write", "leads:read", "receipts:read")


@dataclass(frozen=True)
class DemoLogin:
    username: str
    role: str
    can: str


# The usernames of the manager and the rep are in the demo file; revops is not a rep.
DEMO_LOGINS = (
    DemoLogin("revops", "RevOps", "maintains territories, reps, queues and accounts in Django admin"),
    DemoLogin("manager", "manager of the EMEA team", "sees the team's leads, load and time off; reassigns leads"),
    DemoLogin("anna.schmidt", "rep in DACH (Europe/Berlin)", "works her own leads and logs first touches"),
)


def coverage_exists() -> bool:
    """Whether anyone has started a coverage model (the catch-all queue alone does not count)."""
    return any(model.objects.exists() for model in (Rep, Team, Territory, Account))


def demo_logins_exist() -> bool:
    """Whether an earlier demo load left the demo logins in place."""
    usernames = [login.username for login in DEMO_LOGINS]
    return get_user_model().objects.filter(username__in=usernames).count() == len(usernames)


def demo_load(*, path: Path = DEMO_FILE, history: bool = False) -> int:
    """Import the demo organisation and set up the demo logins, in one transaction; then, with ``history``,
    a month of demo leads in a second one (``demo_history_load``). Returns the number of history leads.

    Side effects: creates or updates the coverage rows named in the demo file
    (nothing else is pruned), and sets the password of every demo login to
    ``DEMO_PASSWORD``. Raises CoverageError when the file does not import.
    The history is made once: a database that already has demo leads gets none.
    ``load_demo`` asks for it unless told ``--no-history``; other callers (tests
    that need the organisation only) get the organisation alone by default.
    The two transactions are separate so the history's after-commit work (its
    e-mail, which goes nowhere) runs while the history controls it.
    """
    with transaction.atomic():
        apply_import(load_yaml(path.read_text(encoding="utf-8")))
        demo_logins_ensure()
        demo_api_key_ensure()
    if not history or demo_history_exists():
        return 0
    from leadrouter.demo.history import demo_history_load

    return demo_history_load()


def demo_history_exists() -> bool:
    """Whether the demo intake source has posted any lead (an earlier history, or someone's curl)."""
    return Lead.objects.filter(intake_source__name=DEMO_API_KEY_NAME).exists()


def demo_api_key_ensure() -> None:
    """Create the demo intake source with the published demo key and the demo scopes, or give an existing
    one the demo scopes. Idempotent."""
    if ApiKey.objects.filter(name=DEMO_API_KEY_NAME).update(scopes=list(DEMO_API_KEY_SCOPES)) == 0:
        apikey_create(name=DEMO_API_KEY_NAME, scopes=DEMO_API_KEY_SCOPES, raw_key=DEMO_API_KEY)


def demo_logins_ensure() -> None:
    """Create or update the demo logins with the demo password. Idempotent.

    ``revops`` is staff in the RevOps group (not a superuser), so the demo shows
    what RevOps can really do in admin. The manager and the rep log in to their
    pages, not to admin.
    """
    user_model = get_user_model()
    revops_group = ensure_role_groups()
    for login in DEMO_LOGINS:
        user, _ = user_model.objects.get_or_create(username=login.username)
        user.set_password(DEMO_PASSWORD)
        user.is_active = True
        user.is_superuser = False
        user.is_staff = login.username == "revops"
        if not user.email:
            user.email = f"{login.username}@example.com"
        if login.username == "manager" and not user.first_name:
            # The manager comes from the file by username only; give the login a person's name.
            user.first_name, user.last_name = "Lena", "Vogel"
        user.save()
        if login.username == "revops":
            user.groups.add(revops_group)
        if login.username == "manager":
            # The EMEA manager reads pages in Berlin time; each rep reads theirs in their own zone.
            Profile.objects.get_or_create(user=user, defaults={"time_zone": "Europe/Berlin"})
