"""The routing benchmark's smoke run: every part runs at small sizes on PostgreSQL with a real web server,
worker and CSV import, and the last line is the JSON a script or CI reads. No figure is judged here:
benchmarks print figures, they do not time tests."""

import json
from io import StringIO

import pytest
from django.core.management import call_command

from leadrouter.management.commands.bench_routing import FIGURES
from routing.dispatch import PHASES

pytestmark = [pytest.mark.postgres, pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def test_the_quick_benchmark_measures_every_part_and_ends_with_one_json_line_of_figures():
    out = StringIO()
    # Smaller than --quick, which is for people: every part still runs, at the fewest leads that measure it.
    call_command(
        "bench_routing",
        "--quick",
        *("--routing", "1000", "--ceiling", "1000", "--bulk", "1000", "--seconds", "2", "--csv", "1000"),
        *("--backlog", "2000", "--backlog-batches", "1", "--workers", "1", "--web-workers", "1"),
        stdout=out,
    )

    lines = out.getvalue().strip().splitlines()
    figures = json.loads(lines[-1])
    assert sorted(figures) == sorted(FIGURES)
    # Every part ran and measured something; only the lock share may be missing, when routing does not
    # report its lock time.
    measured = {name: value for name, value in figures.items() if name != "lock_share"}
    assert all(isinstance(value, int | float) and value > 0 for value in measured.values()), figures
    assert figures["lock_share"] is None or 0 <= figures["lock_share"] <= 1
    # The readable report comes first: one line per figure in the summary.
    assert all(any(line.strip().startswith(name) for line in lines[:-1]) for name in FIGURES)
    # And the routing batches' profile: every phase, per lead, wall time and CPU.
    (phases,) = [line for line in lines if line.strip().startswith("by phase")]
    assert all(f"{name} " in phases for name in PHASES), phases
