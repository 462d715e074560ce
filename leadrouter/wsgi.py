import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "leadrouter.settings")
application = get_wsgi_application()

# Warm before the first request rather than during it (leadrouter/warmup.py).
from leadrouter.warmup import static_load, urls_load  # noqa: E402 - needs the application set up above

urls_load()
static_load()
