"""Small helpers the admin tests share."""

from django.contrib.messages import get_messages
from django.urls import reverse


def admin_url(model_or_obj, view: str, *args) -> str:
    opts = model_or_obj._meta
    return reverse(f"admin:{opts.app_label}_{opts.model_name}_{view}", args=args)


def messages_text(response) -> str:
    """Every message the admin queued for the user, as one string."""
    return " ".join(str(message) for message in get_messages(response.wsgi_request))


def inline_management(prefix: str, total: int, initial: int = 0) -> dict[str, str]:
    """The management-form fields an admin inline formset posts."""
    return {
        f"{prefix}-TOTAL_FORMS": str(total),
        f"{prefix}-INITIAL_FORMS": str(initial),
        f"{prefix}-MIN_NUM_FORMS": "0",
        f"{prefix}-MAX_NUM_FORMS": "1000",
    }
