"""Export formats for the admin's CSV/TSV/HTML downloads that cannot carry spreadsheet formulas.

A spreadsheet runs a cell that starts with ``=``, ``+``, ``-`` or ``@`` (and, in some programs, a tab or a
carriage return) as a formula: a company called ``=HYPERLINK("http://evil/", "Click")`` becomes a link, and
worse payloads run commands. Names, e-mails and domains come from outside (web forms, imported files), so
every text cell that starts like that is written with a leading apostrophe, which spreadsheets read as "this is
text". Numbers (``-5``, ``-0.5``) are left alone: they are not formulas.

django-import-export's own ``IMPORT_EXPORT_ESCAPE_FORMULAE_ON_EXPORT`` only strips a leading ``=`` (and so
changes the value while leaving ``+``, ``-`` and ``@`` through); these formats replace it. JSON and YAML are
read by programs, not spreadsheets, and are exported unchanged. Every admin that exports offers these
(``territories.admin.CsvImportExportMixin``); tests/test_exports.py fails for one that does not.
"""

import re
from typing import Any

from import_export.formats import base_formats

FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")


def escape_formula(value: Any) -> Any:
    """``value`` as a spreadsheet will show it as text: an apostrophe before a leading formula character."""
    if isinstance(value, str) and value.startswith(FORMULA_TRIGGERS) and not _NUMBER.match(value):
        return "'" + value
    return value


class _FormulaSafe(base_formats.TablibFormat):
    def export_data(self, dataset: Any, **kwargs: Any) -> Any:
        escaped = dataset.__class__(headers=dataset.headers, title=dataset.title)
        for row in dataset:
            escaped.append([escape_formula(cell) for cell in row])
        return super().export_data(escaped, **kwargs)


class FormulaSafeCSV(_FormulaSafe, base_formats.CSV):
    pass


class FormulaSafeTSV(_FormulaSafe, base_formats.TSV):
    pass


class FormulaSafeHTML(_FormulaSafe, base_formats.HTML):
    pass
