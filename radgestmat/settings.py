"""RadGestMat settings: one module, every value from the environment.

`.env.example` lists each variable with its default. A `.env` file beside
`manage.py` is read when present; real environment variables win over it.
"""

from __future__ import annotations

import socket
from pathlib import Path

import environ
from django.utils.translation import gettext_lazy as _

from radgestmat import queues

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

DEBUG = env.bool("DEBUG", default=False)

# A development key is only acceptable when DEBUG is on; production must set one.
SECRET_KEY = env("SECRET_KEY", default="dev-only-insecure-key" if DEBUG else None)
if not SECRET_KEY:
    from django.core.exceptions import ImproperlyConfigured

    raise ImproperlyConfigured("SECRET_KEY is not set: export SECRET_KEY (or DEBUG=1 for local development).")

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])
PUBLIC_BASE_URL = env("PUBLIC_BASE_URL", default="http://127.0.0.1:8000").rstrip("/")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django_celery_beat",
    "django_celery_results",
    "assets",
    "notifications",
    "tasks",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "radgestmat.input.RefuseNulMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "radgestmat.csp.ContentSecurityPolicyMiddleware",
]

ROOT_URLCONF = "radgestmat.urls"
WSGI_APPLICATION = "radgestmat.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.i18n",
                "django.template.context_processors.tz",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Data ---------------------------------------------------------------
DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'var' / 'radgestmat.sqlite3'}")}
DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("DB_CONN_MAX_AGE", default=60))
# A kept connection is checked (SELECT 1) before its first use in each request or task,
# so one that PostgreSQL dropped (restart, idle timeout) is replaced instead of failing it.
DATABASES["default"].setdefault("CONN_HEALTH_CHECKS", True)
# In a worker that check runs at most once in this many seconds (radgestmat.celery), not before every task.
DB_HEALTH_CHECK_INTERVAL = env.float("DB_HEALTH_CHECK_INTERVAL", default=1.0)
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Web, worker and beat write to the same file: wait for the lock instead of failing.
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"].setdefault("OPTIONS", {}).update({"timeout": 20, "transaction_mode": "IMMEDIATE"})
    # Tests use a file too, not Django's shared-cache in-memory default: there, SQLite
    # locks whole tables and a worker thread fails at once instead of waiting its turn.
    DATABASES["default"].setdefault("TEST", {})["NAME"] = str(BASE_DIR / "var" / "test_radgestmat.sqlite3")
elif DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # A machine cut off from PostgreSQL must fail and recover, not hang: connects give up after
    # DB_CONNECT_TIMEOUT, a silent peer is found by keepalives (10 + 3 x 5 = 25 s) or, with data
    # unacknowledged, by tcp_user_timeout, and no statement runs longer than DB_STATEMENT_TIMEOUT_MS.
    DATABASES["default"].setdefault("OPTIONS", {})
    for option, value in {
        "connect_timeout": env.int("DB_CONNECT_TIMEOUT", default=5),
        "keepalives": 1,
        "keepalives_idle": 10,
        "keepalives_interval": 5,
        "keepalives_count": 3,
        "tcp_user_timeout": 25_000,
    }.items():
        DATABASES["default"]["OPTIONS"].setdefault(option, value)
    # Server-side binding: psycopg prepares a statement run five times on a connection, so PostgreSQL
    # plans a send's queries once per connection instead of every time. Off behind PgBouncer in
    # transaction mode before 1.21 (or without max_prepared_statements): see docs/configuration.md.
    if env.bool("DB_PREPARED_STATEMENTS", default=True):
        DATABASES["default"]["OPTIONS"].setdefault("server_side_binding", True)
        DATABASES["default"]["OPTIONS"].setdefault("prepare_threshold", 5)
    statement_timeout = env.int("DB_STATEMENT_TIMEOUT_MS", default=30_000)
    if statement_timeout:
        options = DATABASES["default"]["OPTIONS"].get("options", "")
        DATABASES["default"]["OPTIONS"]["options"] = f"{options} -c statement_timeout={statement_timeout}".strip()
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env("REDIS_URL", default="redis://127.0.0.1:6379/0")
# With Redis Sentinel, REDIS_URL is `sentinel://host1:26379;sentinel://host2:26379/0` and this names the master.
REDIS_SENTINEL_MASTER = env("REDIS_SENTINEL_MASTER", default="")
REDIS_SENTINEL_PASSWORD = env("REDIS_SENTINEL_PASSWORD", default="")  # the sentinels' own, if they require one

# --- Auth ---------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "login"

# --- Time and language --------------------------------------------------
TIME_ZONE = env("TIME_ZONE", default="Europe/Paris")
USE_TZ = True
LANGUAGE_CODE = env("LANGUAGE_CODE", default="fr")
LANGUAGES = [("fr", _("French")), ("en", _("English"))]
USE_I18N = True
LOCALE_PATHS = [BASE_DIR / "locale"]
# One way of writing dates per language on every page (English: "1 December 2026, 09:30").
FORMAT_MODULE_PATH = ["radgestmat.formats"]

# --- Static files -------------------------------------------------------
STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "var" / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "radgestmat" / "static"]
STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # whitenoise warns on every request when it is missing
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if not DEBUG
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}

# --- Organisation (appears in messages to borrowers) --------------------
ORGANISATION_NAME = env("ORGANISATION_NAME", default="RadGestMat")
ORGANISATION_REPLY_TO = env("ORGANISATION_REPLY_TO", default="")
# Where and when borrowers bring items back, and how to reach the desk: each line is left out of messages when empty.
ORGANISATION_RETURN_DESK = env("ORGANISATION_RETURN_DESK", default="")
ORGANISATION_OPENING_HOURS = env("ORGANISATION_OPENING_HOURS", default="")
ORGANISATION_CONTACT_PHONE = env("ORGANISATION_CONTACT_PHONE", default="")
ORGANISATION_CONTACT_EMAIL = env("ORGANISATION_CONTACT_EMAIL", default="")

# --- Borrower page and extension requests (docs/borrower-page.md) --------
# A loan's personal link keeps working this many days after the return.
BORROWER_LINK_DAYS_AFTER_RETURN = env.int("BORROWER_LINK_DAYS_AFTER_RETURN", default=7)
# Requests to the borrower pages per BORROWER_RATE_WINDOW_MINUTES: per link, and per client address.
BORROWER_RATE_LIMIT_PER_TOKEN = env.int("BORROWER_RATE_LIMIT_PER_TOKEN", default=60)
BORROWER_RATE_LIMIT_PER_IP = env.int("BORROWER_RATE_LIMIT_PER_IP", default=120)
BORROWER_RATE_WINDOW_MINUTES = env.int("BORROWER_RATE_WINDOW_MINUTES", default=10)
# Extension rules: how many times one loan's due date may be moved later, by staff or by the borrower
# (users with the permission assets.extend_beyond_limit may go further); a borrower's request is refused
# once late by more than this, never beyond this many days from the start; granted at once or waiting.
EXTENSION_MAX_PER_LOAN = env.int("EXTENSION_MAX_PER_LOAN", default=3)
EXTENSION_REFUSE_WHEN_LATE_HOURS = env.int("EXTENSION_REFUSE_WHEN_LATE_HOURS", default=24)
EXTENSION_MAX_TOTAL_DAYS = env.int("EXTENSION_MAX_TOTAL_DAYS", default=30)
EXTENSION_REQUIRES_APPROVAL = env.bool("EXTENSION_REQUIRES_APPROVAL", default=True)
# A request without a chosen time (a WhatsApp "Prolonger" button) asks for this much more.
EXTENSION_DEFAULT_HOURS = env.int("EXTENSION_DEFAULT_HOURS", default=24)

# --- Email --------------------------------------------------------------
# Without EMAIL_HOST, mail is written to files under var/mail so nothing leaves the machine.
EMAIL_HOST = env("EMAIL_HOST", default="")
EMAIL_PORT = env.int("EMAIL_PORT", default=25)
EMAIL_HOST_USER = env("EMAIL_HOST_USER", default="")
EMAIL_HOST_PASSWORD = env("EMAIL_HOST_PASSWORD", default="")
EMAIL_USE_TLS = env.bool("EMAIL_USE_TLS", default=False)
EMAIL_USE_SSL = env.bool("EMAIL_USE_SSL", default=False)
EMAIL_TIMEOUT = env.int("EMAIL_TIMEOUT", default=15)
# A worker's kept SMTP connection gets a NOOP before a message only after this long unused (seconds):
# servers drop connections idle for minutes, and one dropped sooner is reopened before DATA anyway.
EMAIL_NOOP_AFTER_IDLE = env.float("EMAIL_NOOP_AFTER_IDLE", default=10.0)
DEFAULT_FROM_EMAIL = env("DEFAULT_FROM_EMAIL", default="radgestmat@localhost")
SERVER_EMAIL = env("SERVER_EMAIL", default=DEFAULT_FROM_EMAIL)
EMAIL_BACKEND = env(
    "EMAIL_BACKEND",
    default="notifications.channels.smtp_backend.PatientEmailBackend"
    if EMAIL_HOST
    else "django.core.mail.backends.filebased.EmailBackend",
)
EMAIL_FILE_PATH = BASE_DIR / "var" / "mail"
ADMINS = [("Admin", addr) for addr in env.list("ADMIN_EMAILS", default=[])]

# --- Twilio (WhatsApp, SMS) ---------------------------------------------
# Credentials live only here, read from the environment; never in the database.
TWILIO_ACCOUNT_SID = env("TWILIO_ACCOUNT_SID", default="")
TWILIO_AUTH_TOKEN = env("TWILIO_AUTH_TOKEN", default="")
TWILIO_WHATSAPP_FROM = env("TWILIO_WHATSAPP_FROM", default="")
TWILIO_SMS_FROM = env("TWILIO_SMS_FROM", default="")
TWILIO_API_BASE_URL = env("TWILIO_API_BASE_URL", default="")
TWILIO_TIMEOUT = env.int("TWILIO_TIMEOUT", default=10)
WHATSAPP_ENABLED = bool(TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN and TWILIO_WHATSAPP_FROM)
# Borrowers' messages (Twilio's inbound webhook): at most this many per number per hour are acted on.
INBOUND_RATE_LIMIT_PER_HOUR = env.int("INBOUND_RATE_LIMIT_PER_HOUR", default=20)
PHONE_DEFAULT_REGION = env("PHONE_DEFAULT_REGION", default="FR")

# --- Notification engine (channels, sending, retries) -------------------
NOTIFICATION_MAX_ATTEMPTS = env.int("NOTIFICATION_MAX_ATTEMPTS", default=3)
# Retry n waits about RETRY_BASE_DELAY * 2**(n-1) seconds, stretched by up to RETRY_JITTER (0.5 = +50 %).
NOTIFICATION_RETRY_BASE_DELAY = env.int("NOTIFICATION_RETRY_BASE_DELAY", default=60)
NOTIFICATION_RETRY_MAX_DELAY = env.int("NOTIFICATION_RETRY_MAX_DELAY", default=900)
NOTIFICATION_RETRY_JITTER = env.float("NOTIFICATION_RETRY_JITTER", default=0.5)
# Daily cap per channel (0 = none), counted in Redis across all workers; over it, rows wait for the next day.
NOTIFICATION_DAILY_CAP_EMAIL = env.int("NOTIFICATION_DAILY_CAP_EMAIL", default=0)
NOTIFICATION_DAILY_CAP_WHATSAPP = env.int("NOTIFICATION_DAILY_CAP_WHATSAPP", default=0)
NOTIFICATION_DAILY_CAP_SMS = env.int("NOTIFICATION_DAILY_CAP_SMS", default=0)
# Safety rails: send everything to one test address / number, or only log what would be sent.
NOTIFICATION_REDIRECT_EMAIL = env("NOTIFICATION_REDIRECT_EMAIL", default="")
NOTIFICATION_REDIRECT_PHONE = env("NOTIFICATION_REDIRECT_PHONE", default="")
NOTIFICATION_DRY_RUN = env.bool("NOTIFICATION_DRY_RUN", default=False)
# Approved WhatsApp Content Template SIDs per type, e.g. "CREATION=HX…,RETARD=HX…" (WhatsAppConfig wins).
WHATSAPP_CONTENT_SIDS = env.dict("WHATSAPP_CONTENT_SIDS", default={})
SMS_ENABLED = bool(TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN and TWILIO_SMS_FROM)
# Approved WhatsApp Content Template SIDs for the one-message-for-several-items form, per type ("CREATION=HX…").
WHATSAPP_GROUP_CONTENT_SIDS = env.dict("WHATSAPP_GROUP_CONTENT_SIDS", default={})
# One message for several items (docs/notifications.md): a borrower's notifications of one type on one
# channel whose send times fall in the same slot of this many minutes go out as one message.
DIGESTS_ENABLED = env.bool("DIGESTS_ENABLED", default=True)
DIGEST_WINDOW_MINUTES = env.int("DIGEST_WINDOW_MINUTES", default=15)

# --- Scheduling (timeline, checks, relay, overdue ladder, quiet hours) ----
# See docs/timing.md.
OVERDUE_MANAGER_EMAIL = env("OVERDUE_MANAGER_EMAIL", default="")
OVERDUE_GRACE_MINUTES = env.int("OVERDUE_GRACE_MINUTES", default=15)
OVERDUE_REPEAT_HOURS = env.int("OVERDUE_REPEAT_HOURS", default=24)
OVERDUE_MAX_LEVELS = env.int("OVERDUE_MAX_LEVELS", default=3)
# "HH:MM-HH:MM" in TIME_ZONE, empty for none. Reminders and overdue alerts wait for the end of it.
QUIET_HOURS = {
    "WHATSAPP": env("QUIET_HOURS_WHATSAPP", default="21:00-08:00"),
    "SMS": env("QUIET_HOURS_SMS", default="21:00-08:00"),
    "EMAIL": env("QUIET_HOURS_EMAIL", default=""),
}
# --- Experiments and the learned send time (docs/experiments.md) ---------
# An experiment concludes only once each variant has this many loans with a known outcome.
EXPERIMENT_MIN_LOANS = env.int("EXPERIMENT_MIN_LOANS", default=30)
# Off by default: reminders go at the rule's time (08:00, due − 2 h) until this is turned on.
SEND_TIME_LEARNING = env.bool("SEND_TIME_LEARNING", default=False)
# The local hours a learned reminder may go out in; quiet hours still apply inside them.
SEND_TIME_WINDOW = env("SEND_TIME_WINDOW", default="08:00-20:00")
# A learned pre-due reminder (COURT, MOYEN) goes between these many minutes before the due time.
SEND_TIME_LEAD_MINUTES = tuple(env.list("SEND_TIME_LEAD_MINUTES", cast=int, default=[60, 240]))
# Reminders with a known outcome needed: in all, before anything is learned; per borrower, before their own hours count.
SEND_TIME_MIN_REMINDERS = env.int("SEND_TIME_MIN_REMINDERS", default=30)
SEND_TIME_MIN_BORROWER_REMINDERS = env.int("SEND_TIME_MIN_BORROWER_REMINDERS", default=5)
SEND_TIME_HISTORY_DAYS = env.int("SEND_TIME_HISTORY_DAYS", default=180)
# This share of learned reminders tries another allowed hour, so hours the rule never uses get data too.
SEND_TIME_EXPLORATION = env.float("SEND_TIME_EXPLORATION", default=0.1)
NOTIFICATION_RETENTION_DAYS = env.int("NOTIFICATION_RETENTION_DAYS", default=90)
CLEANUP_BATCH_SIZE = env.int("CLEANUP_BATCH_SIZE", default=1000)
# Checks plan rows due before their next run plus this margin.
PLANNING_MARGIN_MINUTES = env.int("PLANNING_MARGIN_MINUTES", default=10)
RELAY_BATCH_SIZE = env.int("RELAY_BATCH_SIZE", default=500)
RELAY_MAX_BATCHES = env.int("RELAY_MAX_BATCHES", default=20)
# A due row enqueued but still not claimed after this long is enqueued again (lost message).
RELAY_REDELIVER_MINUTES = env.int("RELAY_REDELIVER_MINUTES", default=5)
# With beat gone, a worker enqueues a relay run when none ran for RELAY_STALE_SECONDS; each worker
# looks every RELAY_WATCHDOG_SECONDS (radgestmat/watchdog.py).
RELAY_STALE_SECONDS = env.int("RELAY_STALE_SECONDS", default=75)
RELAY_WATCHDOG_SECONDS = env.int("RELAY_WATCHDOG_SECONDS", default=15)
# Whose clock decides "due" on the workers: the database's (one clock for every machine), or the
# process's (tests, whose time-machine cannot move the database's clock). See radgestmat/clock.py.
NOTIFICATION_CLOCK = env("NOTIFICATION_CLOCK", default="database")
SCHEDULER_PIDFILE = env("SCHEDULER_PIDFILE", default=str(BASE_DIR / "var" / "celerybeat.pid"))

# --- Staff UI -----------------------------------------------------------
# Lending to a borrower no loan confirmation can reach: "warn" (staff confirm) or "refuse".
LEND_UNREACHABLE = env("LEND_UNREACHABLE", default="warn")
if LEND_UNREACHABLE not in ("warn", "refuse"):
    from django.core.exceptions import ImproperlyConfigured

    raise ImproperlyConfigured(f"LEND_UNREACHABLE must be 'warn' or 'refuse', not {LEND_UNREACHABLE!r}.")
# The lend form warns about a borrower who returned late this many times in the last this many months.
LEND_WARN_LATE_RETURNS = env.int("LEND_WARN_LATE_RETURNS", default=2)
LEND_WARN_LATE_MONTHS = env.int("LEND_WARN_LATE_MONTHS", default=6)
# At most this many items in one basket lend.
LEND_BASKET_MAX = env.int("LEND_BASKET_MAX", default=30)
# The dashboard turns red from this many permanent failures in 24 h...
DASHBOARD_FAILURE_ALERT = env.int("DASHBOARD_FAILURE_ALERT", default=10)
# ...or when a notification is late (NOTIFICATION_BACKLOG_MAX_MINUTES below), but not in the first
# DASHBOARD_STARTUP_GRACE_MINUTES after this web process started: beat, the workers and the relay
# need a few minutes to report after the stack starts (assets/dashboard.py `starting_up`).
DASHBOARD_STARTUP_GRACE_MINUTES = env.int("DASHBOARD_STARTUP_GRACE_MINUTES", default=10)
FLOWER_URL = env("FLOWER_URL", default="http://127.0.0.1:5555/flower/")  # Flower serves under FLOWER_URL_PREFIX

# --- Operations (health, alerts, Flower, cache) --------------------------
# The cache holds only what can be lost: login-throttle counters and open alert incidents.
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": env("CACHE_URL", default=REDIS_URL),
        "KEY_PREFIX": "radgestmat",
        "OPTIONS": {"socket_connect_timeout": 2, "socket_timeout": 2},
    }
}
if CACHES["default"]["LOCATION"].startswith("sentinel://"):
    CACHES["default"].update(
        BACKEND="radgestmat.cache.SentinelRedisCache",
        OPTIONS={
            **CACHES["default"]["OPTIONS"],
            "master_name": REDIS_SENTINEL_MASTER,
            "sentinel_kwargs": {"password": REDIS_SENTINEL_PASSWORD} if REDIS_SENTINEL_PASSWORD else {},
        },
    )
HEALTH_WORKER_TIMEOUT = env.float("HEALTH_WORKER_TIMEOUT", default=1.0)
# /healthz answers 503 (and an alert goes out) when beat has not ticked for this long.
BEAT_STALE_AFTER_MINUTES = env.int("BEAT_STALE_AFTER_MINUTES", default=10)
# A notification due this long ago and not sent is late (well past the two-minute promise). One
# threshold for the dashboard banner, /scheduler/ and /healthz (`notifications.models.late_cutoff`).
NOTIFICATION_BACKLOG_MAX_MINUTES = env.int("NOTIFICATION_BACKLOG_MAX_MINUTES", default=10)
# Admins (ADMIN_EMAILS) are emailed once per incident when more notifications than this failed in the last hour.
ALERT_FAILURES_PER_HOUR = env.int("ALERT_FAILURES_PER_HOUR", default=10)
FLOWER_URL_PREFIX = env("FLOWER_URL_PREFIX", default="flower")

# --- Security -------------------------------------------------------------
# Behind the nginx of deploy/nginx: it terminates TLS and sets X-Forwarded-Proto and X-Real-IP.
SECURE_PROXY_SSL_HEADER = (
    ("HTTP_X_FORWARDED_PROTO", "https") if env.bool("BEHIND_TLS_PROXY", default=not DEBUG) else None
)
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=not DEBUG)
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]  # probes on the machine itself speak plain HTTP
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=not DEBUG)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=not DEBUG)
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0 if DEBUG else 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=not DEBUG)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=not DEBUG)
SESSION_COOKIE_AGE = env.int("SESSION_COOKIE_AGE", default=12 * 3600)
X_FRAME_OPTIONS = "DENY"
# Everything from this site only, nothing inline (radgestmat/csp.py; {nonce} is fresh per request).
CONTENT_SECURITY_POLICY = env(
    "CONTENT_SECURITY_POLICY",
    default="default-src 'self'; script-src 'self' 'nonce-{nonce}'; style-src 'self'; img-src 'self' data:; "
    "font-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
)
# The request header holding the client's address, as set by the proxy (e.g. HTTP_X_REAL_IP); REMOTE_ADDR otherwise.
CLIENT_IP_HEADER = env("CLIENT_IP_HEADER", default="")
# With HTTP_X_FORWARDED_FOR: how many proxies of ours append to it (nginx alone: 1). The entry that many
# places from the right is the client's address as our outermost proxy saw it; entries left of it are the client's own say.
CLIENT_IP_TRUSTED_PROXIES = env.int("CLIENT_IP_TRUSTED_PROXIES", default=1)
# Login throttling: this many failures for one username from one address (or 4x as many from one
# address for any username) lock that out for LOGIN_LOCKOUT_MINUTES.
LOGIN_FAILURE_LIMIT = env.int("LOGIN_FAILURE_LIMIT", default=5)
LOGIN_LOCKOUT_MINUTES = env.int("LOGIN_LOCKOUT_MINUTES", default=15)

# --- Celery -------------------------------------------------------------
CELERY_BROKER_URL = env("CELERY_BROKER_URL", default=REDIS_URL)
CELERY_RESULT_BACKEND = "django-db"
CELERY_RESULT_EXTENDED = True
CELERY_TIMEZONE = TIME_ZONE
CELERY_ENABLE_UTC = True
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# Celery's Django fixup closes the database connection around every task unless told to reuse
# it, which costs a new PostgreSQL connection per notification sent. Workers keep it by the
# same rules as the web (CONN_MAX_AGE, health checks): see `radgestmat.celery`. The fixup's
# own count then only recycles it every this many tasks.
CELERY_DB_REUSE_MAX = 1000
CELERY_TASK_SOFT_TIME_LIMIT = env.int("CELERY_TASK_SOFT_TIME_LIMIT", default=60)
CELERY_TASK_TIME_LIMIT = env.int("CELERY_TASK_TIME_LIMIT", default=90)
# How long to wait for the reply to the end of a message's DATA (RFC 5321: 10 min), apart from
# EMAIL_TIMEOUT; the send task's soft time limit cuts it shorter (then: ambiguous, not resent).
EMAIL_END_OF_DATA_TIMEOUT = env.int("EMAIL_END_OF_DATA_TIMEOUT", default=min(600, CELERY_TASK_SOFT_TIME_LIMIT))
# Must stay well above the hard time limit, or Redis redelivers tasks that are still running.
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": env.int("CELERY_VISIBILITY_TIMEOUT", default=3600),
    # A Redis that accepts connections but never answers (frozen, or a half-open connection
    # after a network cut) would otherwise block a publish, and the lend at the front desk, forever.
    "socket_connect_timeout": env.float("BROKER_SOCKET_CONNECT_TIMEOUT", default=2.0),
    "socket_timeout": env.float("BROKER_SOCKET_TIMEOUT", default=5.0),
    # A broker connection that went silent (a network cut) is found by keepalives within about 25 s.
    "socket_keepalive": True,
    "socket_keepalive_options": {socket.TCP_KEEPIDLE: 10, socket.TCP_KEEPINTVL: 5, socket.TCP_KEEPCNT: 3},
    "health_check_interval": 10,
    # A worker serves its queues in the order of radgestmat.queues.ALL: the desk's messages first.
    "queue_order_strategy": "priority",
}
if REDIS_SENTINEL_MASTER:
    CELERY_BROKER_TRANSPORT_OPTIONS["master_name"] = REDIS_SENTINEL_MASTER
    if REDIS_SENTINEL_PASSWORD:
        CELERY_BROKER_TRANSPORT_OPTIONS["sentinel_kwargs"] = {"password": REDIS_SENTINEL_PASSWORD}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Reconnect for as long as it takes (the default gives up after 100 tries, and the worker exits).
CELERY_BROKER_CONNECTION_MAX_RETRIES = None
# Event publishes (worker heartbeats, once Flower enables events) are tried once: kombu's default retries
# forever and froze the worker's main process during a network cut (radgestmat/celery.py).
EVENT_PUBLISH_RETRY_POLICY = {"max_retries": 0}
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_TASK_DEFAULT_QUEUE = queues.DEFAULT
# notifications.publishing sends CREATION, RESTITUTION and REPONSE (notifications.models.DESK_TYPES) to queues.PRIORITY.
CELERY_TASK_ROUTES = {"tasks.send_notification": {"queue": queues.NOTIFICATIONS}}
CELERY_BEAT_SCHEDULER = "radgestmat.beat_scheduler:DatabaseScheduler"
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)

# --- Logging ------------------------------------------------------------
# LOG_FORMAT=json writes one JSON object per line with every `extra` field; contact details are masked either way.
from radgestmat.logging import logging_config  # noqa: E402

LOG_FORMAT = env("LOG_FORMAT", default="plain")
# Server-error emails to ADMINS: one per distinct error (exception type and line) per this many minutes.
ERROR_EMAIL_INTERVAL_MINUTES = env.int("ERROR_EMAIL_INTERVAL_MINUTES", default=10)
# Hides every setting and request header that holds a credential (URLs with passwords too) in error reports.
DEFAULT_EXCEPTION_REPORTER_FILTER = "radgestmat.error_emails.SafeExceptionReporterFilter"
LOGGING = logging_config(log_format=LOG_FORMAT, level=env("LOG_LEVEL", default="INFO"))
