"""Exporting the coverage model as a document."""

from typing import Any

from leadrouter.coverage.state import read_state, state_to_document


def export_coverage() -> dict[str, Any]:
    """The whole coverage model in the database as a compact, deterministic document.

    Sections come in format order, entities sorted by key, and keys whose value
    is the default are left out, so exporting an unchanged model always gives
    the same document and importing it back plans no change.
    """
    return state_to_document(read_state())
