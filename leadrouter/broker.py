"""The file-system broker ``make run`` uses by default, with each message written whole before it appears.

Kombu's file-system transport creates a message's file and then writes into it, under a lock its readers do
not take: a worker polling the folder in between moves the empty file away, fails to decode it and stops
("Unrecoverable error: JSONDecodeError", kombu#1551). Here a message is written under a name no reader
looks for and renamed into place, which on one file system is atomic: a reader finds every message whole,
or not at all. Registered as the transport of ``filesystem://`` URLs when the Celery app loads
(``leadrouter/celery.py``), so every connection to that broker (workers, web, the health check) uses it and
other URLs are left alone.
"""

from __future__ import annotations

import os
import uuid
from time import monotonic
from typing import Any

from kombu.transport import TRANSPORT_ALIASES, filesystem
from kombu.utils.encoding import str_to_bytes
from kombu.utils.json import dumps


class Channel(filesystem.Channel):
    # Kombu's stubs name the message ``message`` in the virtual channel and ``payload`` in this one's parent.
    def _put(self, queue: Any, payload: Any, **kwargs: Any) -> None:  # type: ignore[override]
        """Put ``payload`` on ``queue``: written to a hidden file, then renamed to the name readers take."""
        name = f"{round(monotonic() * 1000)}_{uuid.uuid4()}.{queue}.msg"
        final = os.path.join(self.data_folder_out, name)
        # No ".msg" in the name, so ``_get`` (which takes files named like ``<queue>.msg``) passes it by.
        partial = os.path.join(self.data_folder_out, f".partial-{uuid.uuid4()}")
        try:
            with open(partial, "wb") as file:
                file.write(str_to_bytes(dumps(payload)))
            os.replace(partial, final)
        except OSError as exc:
            raise filesystem.ChannelError(f"Cannot add file {final!r} to directory") from exc


class Transport(filesystem.Transport):
    Channel = Channel


def register() -> None:
    """Make ``filesystem://`` URLs use this transport. Call before the first connection to the broker."""
    TRANSPORT_ALIASES["filesystem"] = f"{__name__}:Transport"
