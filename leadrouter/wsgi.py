import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "leadrouter.settings")
application = get_wsgi_application()

# Warm before the first request rather than during it (leadrouter/warmup.py).
from leadrouter.warmup import long_lived_freeze, static_load, urls_load  # noqa: E402 - needs the app set up

urls_load()
static_load()
long_lived_freeze()
