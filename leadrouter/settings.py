"""Settings for leadrouter, read from the environment (see .env.example).

The defaults run everything on one machine with no external services: SQLite in
WAL mode and Celery's file-system broker, both under ``var/``. Point
``DATABASE_URL`` at PostgreSQL and ``CELERY_BROKER_URL`` at Redis or RabbitMQ to
scale out.
"""

from datetime import timedelta
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import environ
from csp.constants import NONE, SELF, UNSAFE_INLINE
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

# SQLite, the file broker and the file cache live here; created on first use.
VAR_DIR = Path(env.str("LEADROUTER_VAR_DIR", default=str(BASE_DIR / "var")))
VAR_DIR.mkdir(parents=True, exist_ok=True)

# Off unless asked for: a forgotten variable must never expose tracebacks and settings.
# `make run` and the test suite turn it on for the local demo (see Makefile and leadrouter/pytest_env.py).
DEBUG = env.bool("DEBUG", default=False)
# The built-in key and host list are only good for the local demo; without DEBUG the app
# refuses to start rather than sign sessions with a published key.
SECRET_KEY = env.str("SECRET_KEY", default="")
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=[])
if DEBUG:
    SECRET_KEY = SECRET_KEY or "insecure-local-demo-key-change-me-in-production"
    ALLOWED_HOSTS = ALLOWED_HOSTS or ["127.0.0.1", "localhost", "[::1]", "testserver"]
elif not SECRET_KEY or not ALLOWED_HOSTS:
    raise ImproperlyConfigured(
        "DEBUG is off (the default), so SECRET_KEY and ALLOWED_HOSTS must be set: "
        "SECRET_KEY to a long random value (python -c 'import secrets; print(secrets.token_urlsafe(50))'), "
        "ALLOWED_HOSTS to the host names the site answers to (leads.example.com). "
        "For the local demo set DEBUG=true instead (make run does)."
    )
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_celery_beat",
    "guardian",
    "import_export",
    "simple_history",
    # Counts failed logins and locks out (lock-outs listed in admin under Axes).
    "axes",
    # The Content-Security-Policy header on every response.
    "csp",
    "territories",
    "routing",
    "sla",
    # The project package itself, above the three apps: its commands (coverage, load_demo) span all of them.
    "leadrouter",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Serves /static/ from the web process itself (gunicorn has no static files server).
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "csp.middleware.CSPMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Records the requesting user on every change history row.
    "simple_history.middleware.HistoryRequestMiddleware",
    # Records a numbered coverage version for every admin request that changed the coverage model.
    "leadrouter.coverage.middleware.CoverageRevisionMiddleware",
    # Shows every page in the signed-in user's time zone (the API stays in UTC).
    "leadrouter.middleware.UserTimeZoneMiddleware",
    # Turns a locked-out login into the lock-out page; last, as django-axes requires.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "leadrouter.urls"
WSGI_APPLICATION = "leadrouter.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database -----------------------------------------------------------------

# An empty variable (DATABASE_URL= in a .env) means the default, as if unset.
DATABASES = {
    "default": env.db_url_config(env.str("DATABASE_URL", default="") or f"sqlite:///{VAR_DIR / 'leadrouter.sqlite3'}")
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Web, worker and beat write to one file at once. WAL lets readers run beside
    # the writer; IMMEDIATE transactions take the write lock at BEGIN, so a
    # transaction never fails half-way on lock upgrade; the busy timeout makes a
    # second writer wait instead of raising "database is locked".
    DATABASES["default"]["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=20000;",
    }
    # A file (not :memory:) so a real worker process can share the test database.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test-leadrouter.sqlite3")}
else:
    DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("CONN_MAX_AGE", default=60))
    DATABASES["default"].setdefault("CONN_HEALTH_CHECKS", True)

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Caches ---------------------------------------------------------------------

CACHES = {"default": env.cache_url_config(env.str("CACHE_URL", default="") or f"filecache://{VAR_DIR / 'cache'}")}

# --- Auth -------------------------------------------------------------------------

AUTHENTICATION_BACKENDS = [
    # First: refuses a locked-out username or address before any password is checked.
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
    "guardian.backends.ObjectPermissionBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "escalations"
LOGOUT_REDIRECT_URL = "login"
# guardian's anonymous user is not used: every read is scoped to a real user.
ANONYMOUS_USER_NAME = None

# --- Client address, login lock-out, Content-Security-Policy ---------------------------------------------

# How many reverse proxies in front of the web process append to X-Forwarded-For. 0 (the default):
# the client is the TCP peer (REMOTE_ADDR). Behind one proxy (nginx, a load balancer) set 1: the client is then
# the address that proxy saw, read from the right of the header, so a client cannot choose its own by sending
# the header itself. The login lock-out (leadrouter.security.client_ip) and the API throttles (DRF's NUM_PROXIES)
# read the header the same way.
TRUSTED_PROXY_COUNT = env.int("TRUSTED_PROXY_COUNT", default=0)

# django-axes: after LOGIN_FAILURE_LIMIT failed logins for one user name, or from one address (counted
# separately), further attempts are refused without checking the password until LOGIN_LOCKOUT_MINUTES have
# passed since the last failure. Admin › Axes lists the attempts; deleting a row lifts its lock.
AXES_FAILURE_LIMIT = env.int("LOGIN_FAILURE_LIMIT", default=10)
AXES_COOLOFF_TIME = timedelta(minutes=env.int("LOGIN_LOCKOUT_MINUTES", default=15))
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
AXES_CLIENT_IP_CALLABLE = "leadrouter.security.client_ip"
AXES_LOCKOUT_CALLABLE = "leadrouter.security.lockout_response"

# Scripts and styles come from this site only. Inline <style> blocks and style attributes are allowed (admin
# and third-party admin templates use them; they cannot run code); inline scripts are not, except the one
# inline handler of django-import-export's export page ("Select all"), allowed by its hash.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF, "'unsafe-hashes'", "'sha256-wid4zL8fR53ZYy1ljOepzR77Dn6vWUUxuNnnWWBP3I8='"],
        "style-src": [SELF, UNSAFE_INLINE],
        "img-src": [SELF, "data:"],
        "font-src": [SELF, "data:"],
        "connect-src": [SELF],
        "object-src": [NONE],
        "base-uri": [SELF],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    }
}

# --- I18N / time ----------------------------------------------------------------------

LANGUAGE_CODE = "en-us"
# Stored times are UTC, and so is everything outside a page (workers, beat, the API, logs).
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
# The zone pages show times in for anyone without one of their own: a rep has theirs (Rep.time_zone), other
# users may set one in their profile (Admin › Territories › Profiles). leadrouter.middleware activates it.
LEADROUTER_DEFAULT_TIME_ZONE = env.str("LEADROUTER_DEFAULT_TIME_ZONE", default="") or "UTC"
try:
    ZoneInfo(LEADROUTER_DEFAULT_TIME_ZONE)
except (ZoneInfoNotFoundError, ValueError) as _error:
    raise ImproperlyConfigured(
        f"LEADROUTER_DEFAULT_TIME_ZONE={LEADROUTER_DEFAULT_TIME_ZONE!r} is not an IANA time zone; "
        "use a name such as Europe/Berlin or America/New_York."
    ) from _error

# --- Static -------------------------------------------------------------------------------

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
# With DEBUG on (make run), WhiteNoise serves files straight from the apps' static folders, no collectstatic.
WHITENOISE_USE_FINDERS = DEBUG
WHITENOISE_AUTOREFRESH = DEBUG

# --- Celery -------------------------------------------------------------------------------

CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="") or "filesystem://"
if CELERY_BROKER_URL.startswith("filesystem://"):
    _broker_dir = VAR_DIR / "broker"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
        # The file-system transport polls its folder; the default second would delay every task.
        "polling_interval": 0.1,
    }
    for _folder in ("queue", "control"):
        (_broker_dir / _folder).mkdir(parents=True, exist_ok=True)
else:
    # Keep retry backoff well below the visibility timeout so no message is
    # redelivered while a worker still holds it.
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
# The queue tasks are sent to unless routed elsewhere; workers consume it with ``--queues``.
# Beat's sweeps and the heartbeat travel here.
CELERY_TASK_DEFAULT_QUEUE = env.str("CELERY_TASK_DEFAULT_QUEUE", default="celery")
# Lanes: live leads (single posts, small batches), bulk work (big batches, CSV imports, departures and
# their notifications) and live notifications travel in queues of their own, so that a worker serving
# the live lane never waits behind a bulk import (docs/routing.md, "Lanes").
LEADROUTER_QUEUE_LIVE = env.str("LEADROUTER_QUEUE_LIVE", default="live")
LEADROUTER_QUEUE_BULK = env.str("LEADROUTER_QUEUE_BULK", default="bulk")
LEADROUTER_QUEUE_NOTIFY = env.str("LEADROUTER_QUEUE_NOTIFY", default="notify")
# Webhooks and CRM write-back: a slow or dead receiver only ever holds this lane's workers (docs/integrations.md).
LEADROUTER_QUEUE_WEBHOOKS = env.str("LEADROUTER_QUEUE_WEBHOOKS", default="webhooks")
# A POST with more leads than this is bulk work; this many or fewer travel in the live lane.
LEADROUTER_BULK_THRESHOLD = env.int("LEADROUTER_BULK_THRESHOLD", default=10)
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = "UTC"
CELERY_ENABLE_UTC = True
# A task is acknowledged only after it ran, and a task whose worker died is put
# back; every task is idempotent so running it twice is harmless.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_CANCEL_LONG_RUNNING_TASKS_ON_CONNECTION_LOSS = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SOFT_TIME_LIMIT = 60
CELERY_TASK_TIME_LIMIT = 90
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Celery's Django fixup closes every database connection before and after each task unless this is set
# (it ignores CONN_MAX_AGE again since celery#9824): a new PostgreSQL backend, with cold caches, for each of
# a live lead's tasks. With it, the fixup closes them only every this many tasks, and leadrouter/celery.py
# closes them as Django closes a request's: past CONN_MAX_AGE, after an error, or failing the health check.
CELERY_DB_REUSE_MAX = env.int("CELERY_DB_REUSE_MAX", default=1000)
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
# Fixed UTC intervals only: business-hours logic lives in code, never in cron.
# Each entry expires after its interval so runs queued while workers were down
# do not pile up. The worker integration tests shorten the heartbeat interval.
HEARTBEAT_INTERVAL_SECONDS = env.int("HEARTBEAT_INTERVAL_SECONDS", default=30)
RECEIVED_SWEEP_INTERVAL_SECONDS = env.int("RECEIVED_SWEEP_INTERVAL_SECONDS", default=15)
SLA_SWEEP_INTERVAL_SECONDS = env.int("SLA_SWEEP_INTERVAL_SECONDS", default=30)
DELIVERY_SWEEP_INTERVAL_SECONDS = env.int("DELIVERY_SWEEP_INTERVAL_SECONDS", default=5)
CELERY_BEAT_SCHEDULE = {
    "worker-heartbeat": {
        "task": "routing.tasks.heartbeat",
        "schedule": timedelta(seconds=HEARTBEAT_INTERVAL_SECONDS),
        # django-celery-beat's DatabaseScheduler reads "expire_seconds" and drops "expires".
        "options": {"expire_seconds": HEARTBEAT_INTERVAL_SECONDS},
    },
    # The lead table is its own outbox: route whatever is still "received".
    "route-received-sweep": {
        "task": "routing.tasks.sweep_received",
        "schedule": timedelta(seconds=RECEIVED_SWEEP_INTERVAL_SECONDS),
        "options": {"expire_seconds": RECEIVED_SWEEP_INTERVAL_SECONDS},
    },
    # First-touch SLAs: fire the escalation steps that are due (see sla/sweep.py).
    "sla-escalation-sweep": {
        "task": "sla.tasks.sweep_escalations",
        "schedule": timedelta(seconds=SLA_SWEEP_INTERVAL_SECONDS),
        "options": {"expire_seconds": SLA_SWEEP_INTERVAL_SECONDS},
    },
    # Publishes the coverage drafts whose scheduled time has come (leadrouter/coverage/versions.py).
    "coverage-draft-publish": {
        "task": "leadrouter.tasks.publish_due_drafts",
        "schedule": timedelta(seconds=60),
        "options": {"expire_seconds": 60},
    },
    # Webhook and CRM deliveries whose retry came due (routing/outbound.py).
    "delivery-sweep": {
        "task": "routing.tasks.sweep_deliveries",
        "schedule": timedelta(seconds=DELIVERY_SWEEP_INTERVAL_SECONDS),
        "options": {"expire_seconds": DELIVERY_SWEEP_INTERVAL_SECONDS},
    },
    # Events past their retention, with their deliveries and attempt logs (routing/outbound.py, "Retention").
    "delivery-prune": {
        "task": "routing.tasks.prune_deliveries",
        "schedule": timedelta(hours=1),
        "options": {"expire_seconds": 3600},
    },
    "notification-sweep": {
        "task": "routing.tasks.sweep_notifications",
        "schedule": timedelta(seconds=60),
        "options": {"expire_seconds": 60},
    },
}
CELERY_WORKER_HIJACK_ROOT_LOGGER = False

# --- DRF ---------------------------------------------------------------------------------------

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    # Requests per API key, per signed-in user and per address for anonymous calls; over the rate: 429
    # with Retry-After. A rate is "<number>/<second|minute|hour|day>".
    "DEFAULT_THROTTLE_CLASSES": [
        "routing.throttles.ApiKeyRateThrottle",
        "routing.throttles.UserRateThrottle",
        "routing.throttles.AnonymousRateThrottle",
    ],
    "DEFAULT_THROTTLE_RATES": {
        "api_key": env.str("THROTTLE_RATE_API_KEY", default="3000/minute"),
        "user": env.str("THROTTLE_RATE_USER", default="600/minute"),
        "anon": env.str("THROTTLE_RATE_ANONYMOUS", default="60/minute"),
        # Website form posts (POST /forms/<token>/), per client address.
        "form": env.str("THROTTLE_RATE_FORM", default="30/minute"),
    },
    "NUM_PROXIES": TRUSTED_PROXY_COUNT,
    # JSON for every error, and 503 with Retry-After when the database refuses connections.
    "EXCEPTION_HANDLER": "leadrouter.errors.api_exception_handler",
    # JSON that would crash later (too deep, not UTF-8, NUL, lone surrogates, 1e999) is a 400 at parsing.
    "DEFAULT_PARSER_CLASSES": [
        "routing.parsers.SafeJSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    # Responses escape non-ASCII characters: still the same JSON to every client, and a stored value with a
    # lone surrogate (SQLite keeps what it is given) is written as its escape instead of failing to encode.
    "UNICODE_JSON": False,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Lead Router API",
    "DESCRIPTION": "Post leads from forms and systems, read where they went and why, and simulate routing.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    # Interactive docs from bundled assets: no CDN, works offline.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # The statuses an integration may close a lead as, beside the lead's own status choices.
    "ENUM_NAME_OVERRIDES": {
        "LeadStatusEnum": "routing.models.Lead.Status",
        "LeadCloseStatusEnum": "routing.services.STATUSES_FROM_OUTSIDE",
    },
}

# --- Routing -------------------------------------------------------------------------------------------

# Enrichment providers, asked in order; the first answer for a field wins.
LEADROUTER_ENRICHMENT_PROVIDERS = env.list(
    "LEADROUTER_ENRICHMENT_PROVIDERS", default=["routing.enrich.FirmographicTableProvider"]
)

# Fuzzy company-name matches at or above STRONG are trusted; between WEAK and
# STRONG they are recorded and flagged for review, never used for ownership.
LEADROUTER_ACCOUNT_MATCH_STRONG = env.float("LEADROUTER_ACCOUNT_MATCH_STRONG", default=95.0)
LEADROUTER_ACCOUNT_MATCH_WEAK = env.float("LEADROUTER_ACCOUNT_MATCH_WEAK", default=85.0)

# A lead whose e-mail matches an open lead is attached to it (status "duplicate")
# instead of being routed again. Off: every lead is routed on its own.
LEADROUTER_ATTACH_DUPLICATES = env.bool("LEADROUTER_ATTACH_DUPLICATES", default=True)
# Leads routed per transaction by a worker; one coverage snapshot serves the batch.
LEADROUTER_ROUTING_BATCH_SIZE = env.int("LEADROUTER_ROUTING_BATCH_SIZE", default=500)
# Leads per transaction in the bulk lane (imports, big batch POSTs), and while live leads keep coming (found
# waiting in the last 30 s): between its batches a bulk task routes the live leads waiting first, so a live
# lead waits for at most one bulk batch, which then holds the routing lock and its process only briefly.
LEADROUTER_BULK_BATCH_SIZE = env.int("LEADROUTER_BULK_BATCH_SIZE", default=500)
LEADROUTER_BULK_BATCH_SIZE_WHILE_LIVE = env.int("LEADROUTER_BULK_BATCH_SIZE_WHILE_LIVE", default=100)
# Threads of one call that routes more than one batch, or of an escalation sweep with more than one batch to
# fire (on PostgreSQL): the second runs its batch's Python while the first waits for the database, taking turns
# (routing/turns.py). 1: batch after batch.
LEADROUTER_ROUTING_THREADS = env.int("LEADROUTER_ROUTING_THREADS", default=2)
# A lead still "received" this long after intake is routed by the sweep (a lost
# message, a broker that was down, a killed worker).
LEADROUTER_RECEIVED_SWEEP_AFTER_SECONDS = env.int("LEADROUTER_RECEIVED_SWEEP_AFTER_SECONDS", default=10)
# Due time of the rep's in-app task for a new lead (SLA policies refine this).
LEADROUTER_FIRST_TOUCH_MINUTES = env.int("LEADROUTER_FIRST_TOUCH_MINUTES", default=60)
# A touch may lie this far in the future (the sender's clock runs a little fast); more is refused.
LEADROUTER_TOUCH_FUTURE_ALLOWANCE_SECONDS = env.int("LEADROUTER_TOUCH_FUTURE_ALLOWANCE_SECONDS", default=120)
# A touch recorded more than this after its time is marked "logged late" in the lead's history.
LEADROUTER_TOUCH_LATE_AFTER_SECONDS = env.int("LEADROUTER_TOUCH_LATE_AFTER_SECONDS", default=300)
# A closed lead (disqualified, nurtured, converted) may be reopened by its owner or their manager this long.
LEADROUTER_REOPEN_DAYS = env.int("LEADROUTER_REOPEN_DAYS", default=30)
# Intake limits: leads per POST and bytes per request body.
LEADROUTER_INTAKE_MAX_BATCH = 1000
DATA_UPLOAD_MAX_MEMORY_SIZE = env.int("DATA_UPLOAD_MAX_MEMORY_SIZE", default=10 * 1024 * 1024)
# Links in notifications point here.
LEADROUTER_BASE_URL = env.str("LEADROUTER_BASE_URL", default="http://127.0.0.1:8000")
# Seconds to wait for a Slack webhook before recording the notice as failed.
LEADROUTER_SLACK_TIMEOUT_SECONDS = env.float("LEADROUTER_SLACK_TIMEOUT_SECONDS", default=5.0)
# A notification still "sending" after this long was left by a worker that died mid-send: the notification
# sweep sends an e-mail again and marks a Slack notice "delivery unknown". Keep it above
# CELERY_TASK_TIME_LIMIT, so that a send still in progress is never taken for a dead one.
LEADROUTER_NOTIFICATION_SENDING_TIMEOUT_SECONDS = env.int(
    "LEADROUTER_NOTIFICATION_SENDING_TIMEOUT_SECONDS", default=300
)
# Webhooks and CRM write-back: seconds to wait for a receiver; the first retry's delay (doubling, with jitter, up
# to the maximum), or what a receiver's Retry-After asks; and the age after which an undelivered event is dead.
LEADROUTER_WEBHOOK_TIMEOUT_SECONDS = env.float("LEADROUTER_WEBHOOK_TIMEOUT_SECONDS", default=5.0)
LEADROUTER_WEBHOOK_RETRY_BASE_SECONDS = env.float("LEADROUTER_WEBHOOK_RETRY_BASE_SECONDS", default=10.0)
LEADROUTER_WEBHOOK_RETRY_MAX_SECONDS = env.float("LEADROUTER_WEBHOOK_RETRY_MAX_SECONDS", default=3600.0)
LEADROUTER_WEBHOOK_MAX_AGE_SECONDS = env.float("LEADROUTER_WEBHOOK_MAX_AGE_SECONDS", default=86400.0)
# Days an event (with its deliveries and attempt log) is kept once every delivery is delivered, and once one is
# dead (longer, so that RevOps can still resend it); at least 1, and the second never shorter than the first.
LEADROUTER_WEBHOOK_RETENTION_DAYS = max(env.int("LEADROUTER_WEBHOOK_RETENTION_DAYS", default=30), 1)
LEADROUTER_WEBHOOK_DEAD_RETENTION_DAYS = max(
    env.int("LEADROUTER_WEBHOOK_DEAD_RETENTION_DAYS", default=90), LEADROUTER_WEBHOOK_RETENTION_DAYS
)
# How long /healthz waits for the broker to take a connection before it reports the broker down (503).
LEADROUTER_BROKER_CHECK_TIMEOUT_SECONDS = env.float("LEADROUTER_BROKER_CHECK_TIMEOUT_SECONDS", default=2.0)

# --- Admin import/export ---------------------------------------------------------------------------

IMPORT_EXPORT_USE_TRANSACTIONS = True
IMPORT_EXPORT_SKIP_ADMIN_LOG = False
IMPORT_EXPORT_IMPORT_PERMISSION_CODE = "change"
IMPORT_EXPORT_EXPORT_PERMISSION_CODE = "view"
# Admin exports write cells a spreadsheet would run as formulas as text: see territories/export_formats.py.
# The library's IMPORT_EXPORT_ESCAPE_FORMULAE_ON_EXPORT stays off: it only strips a leading "=" (leaving
# "+", "-" and "@" through) and writes empty cells as "None".

# --- Mail (the network edge) ------------------------------------------------------------------------

EMAIL_BACKEND = env.str("EMAIL_BACKEND", default="django.core.mail.backends.console.EmailBackend")
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="leadrouter@localhost")

# --- Logging ------------------------------------------------------------------------------------------

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
}

# --- Production hardening (on when DEBUG is off) ------------------------------------------------------

if not DEBUG:
    SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=True)
    CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=True)
    # A proxy that terminates TLS says so in X-Forwarded-Proto; it must set (not pass on) that header.
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    # Plain-HTTP requests are redirected to HTTPS. SECURE_SSL_REDIRECT=false leaves that to a proxy in front
    # that redirects itself; the deploy check's warning about it is then silenced on purpose.
    SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
    if not SECURE_SSL_REDIRECT:
        SILENCED_SYSTEM_CHECKS = ["security.W008"]
    # Health probes often come over plain HTTP from inside the network; they are answered, not redirected.
    SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
    SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31_536_000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=True)
    # The preload flag only matters once the domain is submitted to the browsers' preload list.
    SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=True)
