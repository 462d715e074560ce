"""Small helpers the admin tests share."""

import csv
import io
import threading
from collections.abc import Callable

from django.contrib.messages import get_messages
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
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


def import_csv(client, model, text: str):
    """Upload ``text`` through the admin import page; confirm it when the dry run is clean.

    Returns the dry-run page and, when it was confirmed, the final response.
    """
    opts = model._meta
    dry_run = client.post(
        reverse(f"admin:{opts.app_label}_{opts.model_name}_import"),
        {"format": "0", "resource": "0", "import_file": SimpleUploadedFile("upload.csv", text.encode())},
    )
    assert dry_run.status_code == 200
    confirm_form = dry_run.context.get("confirm_form")
    if confirm_form is None:
        return dry_run, None
    done = client.post(
        reverse(f"admin:{opts.app_label}_{opts.model_name}_process_import"),
        {name: confirm_form.initial.get(name, "") for name in confirm_form.fields},
    )
    return dry_run, done


def export_csv(client, model) -> list[dict[str, str]]:
    opts = model._meta
    url = reverse(f"admin:{opts.app_label}_{opts.model_name}_export")
    form = client.get(url).context["form"]
    selected = {name: "on" for name in form.fields if name not in ("format", "resource", "export_items")}
    response = client.post(url, {"format": "0", "resource": "0", **selected})
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    return list(csv.DictReader(io.StringIO(response.content.decode())))


def run_together(*work: Callable[[], object], timeout: float = 120) -> list[BaseException]:
    """Run each callable in its own thread, all released at once by a barrier, each with its own database
    connection (closed at the end), as separate workers would. Returns what any of them raised."""
    barrier = threading.Barrier(len(work))
    errors: list[BaseException] = []

    def run(job: Callable[[], object]) -> None:
        try:
            barrier.wait()
            job()
        except BaseException as error:
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(job,)) for job in work]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout)
    return errors
