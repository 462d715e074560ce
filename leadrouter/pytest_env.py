"""The environment the test suite runs in, set before pytest-django loads the settings.

pytest loads this plugin early (``-p leadrouter.pytest_env`` in pyproject's ``addopts``), so it applies to a plain
``pytest`` run on a fresh machine as much as to ``make test`` and CI. The suite runs the local configuration
(DEBUG on: the built-in demo key and host list, no HTTPS redirect for the test client); pytest-django still
turns DEBUG off while each test runs, so error pages and responses are the production ones. The production-only
settings are tested in a subprocess with their own environment (tests/test_production_settings.py). Processes
the tests start (Celery workers) inherit this environment.
"""

import os

# Forced, not defaulted: a shell that exports production's DEBUG=false would otherwise redirect every
# test request to HTTPS.
os.environ["DEBUG"] = "true"
