"""Settings for leadrouter, read from the environment (see .env.example).

The defaults run everything on one machine with no external services: SQLite in
WAL mode and Celery's file-system broker, both under ``var/``. Point
``DATABASE_URL`` at PostgreSQL and ``CELERY_BROKER_URL`` at Redis or RabbitMQ to
scale out.
"""

from datetime import timedelta
from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

# SQLite, the file broker and the file cache live here; created on first use.
VAR_DIR = Path(env.str("LEADROUTER_VAR_DIR", default=str(BASE_DIR / "var")))
VAR_DIR.mkdir(parents=True, exist_ok=True)

DEBUG = env.bool("DEBUG", default=True)
# The default key is only good for the local demo; production sets SECRET_KEY.
SECRET_KEY = env.str("SECRET_KEY", default="insecure-local-demo-key-change-me-in-production")
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]", "testserver"])
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
    "territories",
    "routing",
    "sla",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Records the requesting user on every change history row.
    "simple_history.middleware.HistoryRequestMiddleware",
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

# --- I18N / time ----------------------------------------------------------------------

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# --- Static -------------------------------------------------------------------------------

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"

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
CELERY_TASK_DEFAULT_QUEUE = env.str("CELERY_TASK_DEFAULT_QUEUE", default="celery")
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
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
# Fixed UTC intervals only: business-hours logic lives in code, never in cron.
# Each entry expires after its interval so runs queued while workers were down
# do not pile up. The worker integration tests shorten the heartbeat interval.
HEARTBEAT_INTERVAL_SECONDS = env.int("HEARTBEAT_INTERVAL_SECONDS", default=30)
RECEIVED_SWEEP_INTERVAL_SECONDS = env.int("RECEIVED_SWEEP_INTERVAL_SECONDS", default=15)
SLA_SWEEP_INTERVAL_SECONDS = env.int("SLA_SWEEP_INTERVAL_SECONDS", default=30)
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
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
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
# A lead still "received" this long after intake is routed by the sweep (a lost
# message, a broker that was down, a killed worker).
LEADROUTER_RECEIVED_SWEEP_AFTER_SECONDS = env.int("LEADROUTER_RECEIVED_SWEEP_AFTER_SECONDS", default=10)
# How long a worker reuses its copy of the coverage model (territories, rules, queues, reps'
# availability, accounts, scoring) before reading it again. Load, caps and round-robin
# pointers are always read fresh. 0 reads everything for every batch.
LEADROUTER_COVERAGE_CACHE_SECONDS = env.float("LEADROUTER_COVERAGE_CACHE_SECONDS", default=5.0)
# Due time of the rep's in-app task for a new lead (SLA policies refine this).
LEADROUTER_FIRST_TOUCH_MINUTES = env.int("LEADROUTER_FIRST_TOUCH_MINUTES", default=60)
# Intake limits: leads per POST and bytes per request body.
LEADROUTER_INTAKE_MAX_BATCH = 1000
DATA_UPLOAD_MAX_MEMORY_SIZE = env.int("DATA_UPLOAD_MAX_MEMORY_SIZE", default=10 * 1024 * 1024)
# Links in notifications point here.
LEADROUTER_BASE_URL = env.str("LEADROUTER_BASE_URL", default="http://127.0.0.1:8000")
# Seconds to wait for a Slack webhook before recording the notice as failed.
LEADROUTER_SLACK_TIMEOUT_SECONDS = env.float("LEADROUTER_SLACK_TIMEOUT_SECONDS", default=5.0)

# --- Admin import/export ---------------------------------------------------------------------------

IMPORT_EXPORT_USE_TRANSACTIONS = True
IMPORT_EXPORT_SKIP_ADMIN_LOG = False
IMPORT_EXPORT_IMPORT_PERMISSION_CODE = "change"
IMPORT_EXPORT_EXPORT_PERMISSION_CODE = "view"

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
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
