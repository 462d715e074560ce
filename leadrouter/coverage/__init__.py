"""Coverage as code: the whole coverage model as one YAML document.

RevOps export the teams, reps, queues, territories, accounts with their
opportunities, routing rules, business calendars and SLA policies,
edit the file, review the plan (``manage.py coverage import FILE --dry-run``) and
import it back. The format is described in docs/coverage.md and checked by
``schema.json`` in this package.

Numbered versions, drafts and publishing live in ``leadrouter.coverage.versions``.

Other code imports only the names below (and ``versions``).
"""

from leadrouter.coverage.errors import CoverageError
from leadrouter.coverage.exporter import export_coverage
from leadrouter.coverage.importer import apply_import, plan_import
from leadrouter.coverage.plan import Change, CoveragePlan, FieldChange
from leadrouter.coverage.yamlio import dump_yaml, load_yaml

__all__ = [
    "Change",
    "CoverageError",
    "CoveragePlan",
    "FieldChange",
    "apply_import",
    "dump_yaml",
    "export_coverage",
    "load_yaml",
    "plan_import",
]
