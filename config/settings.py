"""Settings, read only from environment variables.

Every variable is listed with its default and meaning in deploy/.env.example. The defaults need no
server: SQLite, an in-process channel layer, a filesystem broker for Celery, and no language model
(a scripted interviewer runs instead). A value that cannot be parsed stops the process at start
with a message naming the variable.
"""

from __future__ import annotations

import copy
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured
from django.utils.translation import gettext_lazy as _

from config.env import Env

BASE_DIR = Path(__file__).resolve().parent.parent
env = Env()

# Runtime state of the embedded default (SQLite file, broker folders, beat schedule).
VAR_DIR = Path(env.str("VAR_DIR") or BASE_DIR / "var")

# --- Core -----------------------------------------------------------------------------------------

# On by default so that a fresh checkout runs as-is (as in healthchecks); production sets
# DEBUG=false, and then the development secret key below is refused.
DEBUG = env.bool("DEBUG", True)

DEVELOPMENT_SECRET_KEY = "insecure-development-key-do-not-use-in-production"  # noqa: S105  # nosec B105
SECRET_KEY = env.str("SECRET_KEY") or DEVELOPMENT_SECRET_KEY
if not DEBUG and (SECRET_KEY == DEVELOPMENT_SECRET_KEY or len(SECRET_KEY) < 32):
    raise ImproperlyConfigured(
        "SECRET_KEY must be set to a random value of at least 32 characters when DEBUG is off "
        "(for example: python -c 'import secrets; print(secrets.token_urlsafe(50))')."
    )

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]")
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS")
for origin in CSRF_TRUSTED_ORIGINS:
    if "://" not in origin:
        raise ImproperlyConfigured(
            f"CSRF_TRUSTED_ORIGINS entry {origin!r} needs a scheme, e.g. https://{origin}."
        )

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "servestatic.runserver_nostatic",
    "django.contrib.staticfiles",
    "channels",
    "django_htmx",
    "template_partials",
    "elicit",
    "graph",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "servestatic.middleware.ServeStaticMiddleware",
    # Below ServeStatic (static files come precompressed and never reach it), above everything
    # that writes the body: pages are compressed last, downloads are not (config/compression.py).
    "config.compression.PageGZipMiddleware",
    "csp.middleware.CSPMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]

ROOT_URLCONF = "config.urls"
ASGI_APPLICATION = "config.asgi.application"
WSGI_APPLICATION = None

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
                "django.template.context_processors.i18n",
                "elicit.context_processors.site",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------------------

DATABASE_URL = env.str("DATABASE_URL") or f"sqlite:///{VAR_DIR / 'db.sqlite3'}"
try:
    _database = dj_database_url.parse(DATABASE_URL)
except (ValueError, KeyError) as error:
    raise ImproperlyConfigured(f"DATABASE_URL={DATABASE_URL!r} cannot be used: {error}") from None
if _database["ENGINE"] not in {
    "django.db.backends.sqlite3",
    "django.db.backends.postgresql",
}:
    raise ImproperlyConfigured(
        f"DATABASE_URL={DATABASE_URL!r}: only sqlite:// and postgres:// are supported."
    )
_engine = _database["ENGINE"]  # as the URL says (the pool below uses a subclass of it)
if _engine == "django.db.backends.sqlite3":
    # WAL lets the web server read while the worker writes; IMMEDIATE transactions avoid the
    # "database is locked" upgrade deadlock between the two processes. Connections are kept:
    # opening a SQLite file is cheap but not free, and nothing limits their number.
    _database["CONN_MAX_AGE"] = env.int("DATABASE_CONN_MAX_AGE", 60, minimum=0)
    _database["OPTIONS"] = {
        "timeout": 20,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
elif env.bool("DATABASE_POOL", True):
    # Django's backend, whose pool checks a connection it hands out without a round trip.
    _database["ENGINE"] = "config.postgresql"
    # A web process's threads (its HTTP threads and the interviews', see HTTP_CONCURRENCY and
    # INTERVIEW_DB_THREADS) share psycopg's pool (Django >= 5.1): a bounded set of connections,
    # each held only while a request or a unit of work runs. CONN_MAX_AGE must then be 0.
    _database["CONN_MAX_AGE"] = 0
    _database.setdefault("OPTIONS", {})["pool"] = {
        "min_size": env.int("DATABASE_POOL_MIN", 2, minimum=0),
        "max_size": env.int("DATABASE_POOL_MAX", 20, minimum=1),
        # Seconds a request waits for a connection; when the database is unreachable, the
        # request then fails with a clear 503 page rather than hanging.
        "timeout": env.float("DATABASE_POOL_TIMEOUT", 10.0, minimum=0.5),
    }
else:
    # Behind an external pooler (PgBouncer in transaction mode): one short connection per use.
    _database["CONN_MAX_AGE"] = env.int("DATABASE_CONN_MAX_AGE", 0, minimum=0)
_database["CONN_HEALTH_CHECKS"] = True
# Threads of a web process that run the live interviews' database calls (PostgreSQL; SQLite
# uses one), each holding a connection only while a call runs (elicit/interviewer.py).
INTERVIEW_DB_THREADS = env.int("INTERVIEW_DB_THREADS", 8, minimum=1)
# HTTP requests one web process handles at once (config/handlers.py); the others wait their
# turn. Each holds a database connection while it runs, so with the pool: its size, less what
# the interviews' threads may hold.
HTTP_CONCURRENCY = env.int(
    "HTTP_CONCURRENCY",
    max(4, _database.get("OPTIONS", {}).get("pool", {}).get("max_size", 28) - INTERVIEW_DB_THREADS),
    minimum=1,
)
DATABASES = {"default": _database}

# A read replica of the PostgreSQL primary (streaming replication) for the research area's
# heavy reads: see config/routers.py. Same connection settings as the primary.
DATABASE_REPLICA_URL = env.str("DATABASE_REPLICA_URL")
if DATABASE_REPLICA_URL:
    try:
        _replica = dj_database_url.parse(DATABASE_REPLICA_URL)
    except (ValueError, KeyError) as error:
        raise ImproperlyConfigured(
            f"DATABASE_REPLICA_URL={DATABASE_REPLICA_URL!r} cannot be used: {error}"
        ) from None
    if _replica["ENGINE"] != _engine:
        raise ImproperlyConfigured(
            "DATABASE_REPLICA_URL must use the same database engine as DATABASE_URL."
        )
    for _key in ("ENGINE", "CONN_MAX_AGE", "CONN_HEALTH_CHECKS", "OPTIONS"):
        _replica[_key] = copy.deepcopy(_database.get(_key))
    _replica["TEST"] = {"MIRROR": "default"}  # tests read what they wrote
    DATABASES["replica"] = _replica
    DATABASE_ROUTERS = ["config.routers.ReplicaRouter"]
    MIDDLEWARE.insert(
        MIDDLEWARE.index("django.contrib.sessions.middleware.SessionMiddleware"),
        "config.routers.ResearchReplicaMiddleware",
    )
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Redis, channel layer, cache ------------------------------------------------------------------

REDIS_URL = env.url("REDIS_URL", schemes={"redis", "rediss", "unix"})

if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            "CONFIG": {"hosts": [REDIS_URL]},
        }
    }
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "mge",
        }
    }
else:
    # One web process on the embedded default: an in-process layer and cache are enough.
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# --- Celery ---------------------------------------------------------------------------------------

CELERY_BROKER_URL = env.url(
    "CELERY_BROKER_URL",
    schemes={"redis", "rediss", "amqp", "pyamqp", "filesystem"},
    default=REDIS_URL or "filesystem://",
)
BROKER_DIR = VAR_DIR / "broker"
if CELERY_BROKER_URL.startswith("filesystem://"):
    # kombu's filesystem transport: a folder of message files shared by the web server and the
    # worker on one machine. No server needed; fine for the embedded default, not for scale.
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(BROKER_DIR / "queue"),
        "data_folder_out": str(BROKER_DIR / "queue"),
        "control_folder": str(BROKER_DIR / "control"),
        "store_processed": False,
    }
if CELERY_BROKER_URL.startswith(("redis://", "rediss://")):
    # A task taken by a worker that died before acknowledging it is delivered again after this
    # many seconds. Keep it above the longest countdown a task is queued with (two minutes).
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "visibility_timeout": env.int("CELERY_VISIBILITY_TIMEOUT", 3600, minimum=1)
    }
# The queue the web processes send to and the workers consume: deployments (or test runs) that
# share one Redis keep their tasks apart with their own queue name.
CELERY_TASK_DEFAULT_QUEUE = env.str("CELERY_QUEUE") or "celery"
CELERY_RESULT_BACKEND = (
    env.url("CELERY_RESULT_BACKEND", schemes={"redis", "rediss", "file"}, default=REDIS_URL) or None
)
# Nothing reads the results of the tasks the web processes send (moderation, deduplication,
# pipeline jobs record their outcome in the database). With a Redis result backend, a task sent
# with its result kept subscribes the sender to the result's channel: one more command on the
# message path, a subscription per message that is never dropped, and results pushed to a web
# process that never reads them. A task whose result is read says so (elicit.ping).
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True  # a worker killed mid-task leaves the task to run again
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SOFT_TIME_LIMIT = env.int("CELERY_TASK_SOFT_TIME_LIMIT", 300, minimum=1)
CELERY_TASK_TIME_LIMIT = CELERY_TASK_SOFT_TIME_LIMIT + 60
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")
# The pipeline also runs when enough new cards or judgments arrive; the schedule is the safety
# net that catches the rest (the reference ran hypotheses every 12 hours).
PIPELINE_INTERVAL_HOURS = env.float("PIPELINE_INTERVAL_HOURS", 12.0, minimum=0.1)
# Scoring also resamples participants this many times (seeded, so reruns give the same
# figures) for each value's confidence interval and win rate.
BOOTSTRAP_SAMPLES = env.int("BOOTSTRAP_SAMPLES", 200, minimum=1)
BOOTSTRAP_SEED = env.int("BOOTSTRAP_SEED", 20240415, minimum=0)
CELERY_BEAT_SCHEDULE = {
    "graph-pipeline": {
        "task": "graph.run_scheduled_pipeline",
        "schedule": PIPELINE_INTERVAL_HOURS * 60 * 60,
        "options": {"expires": 60 * 60},
    },
    # Erase participants older than their deliberation's retention period (graph/privacy.py).
    "privacy-retention": {
        "task": "graph.apply_retention",
        "schedule": 60 * 60,
        "options": {"expires": 60 * 60},
    },
}

# --- Vote quality ---------------------------------------------------------------------------------

# Rules that flag judgments or participants for a moderator (graph/quality.py); they never
# delete anything, and scoring runs can include or exclude what they flag.
VOTE_QUALITY_MIN_SECONDS = env.float("VOTE_QUALITY_MIN_SECONDS", 4.0, minimum=0)
VOTE_QUALITY_STRAIGHT_LINE_MIN = env.int("VOTE_QUALITY_STRAIGHT_LINE_MIN", 5, minimum=2)
VOTE_QUALITY_STRAIGHT_LINE_DISAGREE = env.float(
    "VOTE_QUALITY_STRAIGHT_LINE_DISAGREE", 0.4, minimum=0, maximum=1
)
VOTE_QUALITY_OWN_VALUE_MIN = env.int("VOTE_QUALITY_OWN_VALUE_MIN", 3, minimum=1)
VOTE_QUALITY_GROUP_MIN = env.int("VOTE_QUALITY_GROUP_MIN", 3, minimum=2)
VOTE_QUALITY_GROUP_SIMILARITY = env.float(
    "VOTE_QUALITY_GROUP_SIMILARITY", 0.75, minimum=0, maximum=1
)
VOTE_QUALITY_GROUP_WINDOW_SECONDS = env.float(
    "VOTE_QUALITY_GROUP_WINDOW_SECONDS", 1800.0, minimum=0
)
VOTE_QUALITY_GROUP_MIN_JUDGMENTS = env.int("VOTE_QUALITY_GROUP_MIN_JUDGMENTS", 3, minimum=1)

# --- Language model -------------------------------------------------------------------------------

# Any OpenAI-compatible endpoint (OpenAI, vLLM, Ollama, llama.cpp server). The standard
# OPENAI_* variables are honoured when the LLM_* ones are not set. With neither a base URL nor
# a key, the interview runs with the scripted interviewer.
LLM_BASE_URL = env.url("LLM_BASE_URL", "OPENAI_BASE_URL", schemes={"http", "https"})
LLM_API_KEY = env.first("LLM_API_KEY", "OPENAI_API_KEY")
LLM_ENABLED = bool(LLM_BASE_URL or LLM_API_KEY)
LLM_MODEL = env.str("LLM_MODEL") or "gpt-4o"
LLM_TIMEOUT = env.float("LLM_TIMEOUT", 60.0, minimum=1)
LLM_MAX_RETRIES = env.int("LLM_MAX_RETRIES", 2, minimum=0)
LLM_TEMPERATURE = env.float("LLM_TEMPERATURE", 0.7, minimum=0, maximum=2)
# The HTTP stack the interviews read the model's stream with: aiohttp (about a third less of the
# server's CPU per token read, see elicit/llm.py) or the SDK's own httpx.
LLM_HTTP_CLIENT = env.choice("LLM_HTTP_CLIENT", "aiohttp", {"aiohttp", "httpx"})
# Prices per million tokens, for the estimated cost on the research dashboard (0: unknown).
LLM_PRICE_PROMPT_PER_MTOK = env.float("LLM_PRICE_PROMPT_PER_MTOK", 0.0, minimum=0)
LLM_PRICE_COMPLETION_PER_MTOK = env.float("LLM_PRICE_COMPLETION_PER_MTOK", 0.0, minimum=0)
EMBEDDING_MODEL = env.str("EMBEDDING_MODEL") or "text-embedding-3-small"
EMBEDDING_BACKEND = env.choice("EMBEDDING_BACKEND", "lexical", {"lexical", "openai", "minilm"})


def _threshold(name: str) -> float | None:
    """Unset: the embedding backend's own default (graph/embeddings.py, from bench/dedup.py)."""
    return env.float(name, 0.0, minimum=0.0, maximum=1.0) if env.str(name) else None


# Deduplication: a card whose similarity to a value is >= SAME joins it, < DIFFERENT is a new
# value; in between, the language-model judge is asked about the JUDGE_CANDIDATES nearest values.
DEDUP_SAME_THRESHOLD = _threshold("DEDUP_SAME_THRESHOLD")
DEDUP_DIFFERENT_THRESHOLD = _threshold("DEDUP_DIFFERENT_THRESHOLD")
if (
    DEDUP_SAME_THRESHOLD is not None
    and DEDUP_DIFFERENT_THRESHOLD is not None
    and DEDUP_DIFFERENT_THRESHOLD > DEDUP_SAME_THRESHOLD
):
    raise ImproperlyConfigured("DEDUP_DIFFERENT_THRESHOLD must not be above DEDUP_SAME_THRESHOLD.")
DEDUP_JUDGE_CANDIDATES = env.int("DEDUP_JUDGE_CANDIDATES", 2, minimum=1)
# Seconds the story routing keeps a deliberation's answer counts in the cache (0: count on every
# story drawn; see graph/participation.py).
ROUTING_COUNTS_SECONDS = env.int("ROUTING_COUNTS_SECONDS", 5, minimum=0)
MODERATION_BACKEND = env.choice("MODERATION_BACKEND", "auto", {"auto", "openai", "rules", "off"})
MODERATION_MODEL = env.str("MODERATION_MODEL") or "omni-moderation-latest"
# A moderator's claim on a queue item lapses after this long, so an abandoned item comes back.
MODERATION_CLAIM_MINUTES = env.int("MODERATION_CLAIM_MINUTES", 15, minimum=1)

# --- Participants ---------------------------------------------------------------------------------

MESSAGE_MAX_CHARS = env.int("MESSAGE_MAX_CHARS", 4000, minimum=100)
MESSAGES_PER_MINUTE = env.int("MESSAGES_PER_MINUTE", 12, minimum=1)
REPORTS_PER_HOUR = env.int("REPORTS_PER_HOUR", 20, minimum=1)
# Writes (form posts, websocket frames) per participant and per client address per minute, and
# new participants per address per hour. An address may hide a whole lab or campus behind NAT,
# hence its higher limits. See elicit/ratelimit.py.
RATE_LIMIT_PARTICIPANT_PER_MINUTE = env.int("RATE_LIMIT_PARTICIPANT_PER_MINUTE", 30, minimum=1)
RATE_LIMIT_ADDRESS_PER_MINUTE = env.int("RATE_LIMIT_ADDRESS_PER_MINUTE", 300, minimum=1)
RATE_LIMIT_JOINS_PER_ADDRESS_PER_HOUR = env.int(
    "RATE_LIMIT_JOINS_PER_ADDRESS_PER_HOUR", 200, minimum=1
)
# Failed admin logins allowed per username and per address in a window of so many minutes.
ADMIN_LOGIN_FAILURES = env.int("ADMIN_LOGIN_FAILURES", 5, minimum=1)
ADMIN_LOGIN_WINDOW_MINUTES = env.int("ADMIN_LOGIN_WINDOW_MINUTES", 15, minimum=1)
# The server writing a reply touches it every second (a heartbeat, with the text so far), tokens
# or not. A streaming reply not touched for this long has lost its writer (its server died): it
# is marked partial, and the participant's page, reconnected to another server, shows it cut off
# with "Try again" by itself. Higher tolerates longer database stalls; lower recovers sooner.
STALE_REPLY_SECONDS = env.int("STALE_REPLY_SECONDS", 5, minimum=2)

# --- Security -------------------------------------------------------------------------------------

SECURE_COOKIES = env.bool("SECURE_COOKIES", not DEBUG)
SESSION_COOKIE_SECURE = SECURE_COOKIES
CSRF_COOKIE_SECURE = SECURE_COOKIES
SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = True  # htmx gets the token from the page, never from the cookie
SESSION_COOKIE_AGE = env.int("SESSION_COOKIE_AGE", 60 * 60 * 24 * 30, minimum=60)
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", not DEBUG)
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", 0 if DEBUG else 31_536_000, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", False)
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
if env.bool("TRUST_X_FORWARDED_PROTO", False):
    # Only behind a reverse proxy that sets this header itself (see deploy/).
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
USE_X_FORWARDED_HOST = env.bool("USE_X_FORWARDED_HOST", False)
# Reverse proxies in front of the app that append the client's address to X-Forwarded-For. 0:
# the header is ignored (anyone could forge it) and the connection's address is the client's.
TRUSTED_PROXY_COUNT = env.int("TRUSTED_PROXY_COUNT", 0, minimum=0)

# Content-Security-Policy: scripts only from our own origin, never inline.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        # Inline style attributes only (the Django admin uses a few); no inline scripts.
        "style-src": ["'self'", "'unsafe-inline'"],
        "img-src": ["'self'", "data:"],
        "connect-src": ["'self'"],
        "frame-ancestors": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "object-src": ["'none'"],
    }
}

# The first backend refuses logins while a username or address is throttled (elicit/login.py).
AUTHENTICATION_BACKENDS = [
    "elicit.login.ThrottleBackend",
    "django.contrib.auth.backends.ModelBackend",
]

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# --- Internationalisation -------------------------------------------------------------------------

LANGUAGE_CODE = env.str("LANGUAGE_CODE") or "en"
LANGUAGES = [("en", _("English")), ("de", _("German")), ("fr", _("French")), ("es", _("Spanish"))]
LOCALE_PATHS = [BASE_DIR / "locale"]
USE_I18N = True
TIME_ZONE = env.str("TIME_ZONE") or "UTC"
USE_TZ = True

# --- Static files ---------------------------------------------------------------------------------

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "servestatic.storage.CompressedManifestStaticFilesStorage"
        )
    },
}

# --- Logging --------------------------------------------------------------------------------------

LOG_LEVEL = env.choice("LOG_LEVEL", "info", {"debug", "info", "warning", "error"}).upper()
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        # The openai/httpx clients log request headers at DEBUG; keep keys out of logs.
        "httpx": {"level": "WARNING"},
        "httpx2": {"level": "WARNING"},
        "openai": {"level": "WARNING"},
    },
}

LOGIN_URL = "research:login"
LOGIN_REDIRECT_URL = "research:index"
LOGOUT_REDIRECT_URL = "research:login"
