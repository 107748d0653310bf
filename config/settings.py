"""VoiceDesk settings.

Every setting comes from the environment (see .env.example). With no environment at
all the product runs embedded: SQLite, a local-memory cache, the in-memory channel
layer and a Celery broker on the filesystem, so `make run` needs nothing but Python.
Setting DATABASE_URL and REDIS_URL switches to PostgreSQL and Redis.
"""

from datetime import timedelta
from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
if (BASE_DIR / ".env").exists():
    environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

# Local state of the embedded run: SQLite file, broker queue, static files, demo login.
VAR_DIR = Path(env("VOICEDESK_VAR_DIR", default=str(BASE_DIR / "var")))

# Only for the embedded run on a developer's machine: `manage.py check --deploy`
# fails while it is in use (tenants.checks).
EMBEDDED_SECRET_KEY = "embedded-only-not-for-production-0b7c1d2e"

SECRET_KEY = env("DJANGO_SECRET_KEY", default=EMBEDDED_SECRET_KEY)
DEBUG = env.bool("DJANGO_DEBUG", default=False)
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])
# Behind a TLS-terminating proxy: X-Forwarded-Proto tells the scheme the client used (and
# X-Forwarded-Host the host, where a provider's signature covers the URL it called).
BEHIND_TLS_PROXY = env.bool("DJANGO_BEHIND_TLS_PROXY", default=False)
# Trusted reverse proxies in front of the app; their X-Forwarded-For gives the client IP. Without the
# TLS proxy no one in front is trusted: a client's own X-Forwarded-For would name any address it liked
# (and pass the Retell address check, or dodge a rate limit).
NUM_PROXIES = env.int("NUM_PROXIES", default=1 if BEHIND_TLS_PROXY else 0)
if BEHIND_TLS_PROXY:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = True
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
# HSTS: on by default behind the TLS proxy (the site then answers only HTTPS), for a year.
# Preloading (browsers' built-in list, submitted at hstspreload.org and slow to undo) is the
# domain owner's decision: off unless DJANGO_SECURE_HSTS_PRELOAD says so.
SECURE_HSTS_SECONDS = env.int("DJANGO_SECURE_HSTS_SECONDS", default=31536000 if BEHIND_TLS_PROXY else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", default=True)
SECURE_HSTS_PRELOAD = env.bool("DJANGO_SECURE_HSTS_PRELOAD", default=False)

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_filters",
    "channels",
    "guardian",
    "axes",
    "tenants",
    "audit",
    "retell_config",
    "voice",
    "appointments",
    "monitoring",
    "experiments",
    "api",
]

MIDDLEWARE = [
    "audit.middleware.RequestIdMiddleware",
    "config.middleware.SecurityMiddleware",
    "config.static.StaticFilesMiddleware",
    "config.middleware.SessionMiddleware",
    "config.middleware.CommonMiddleware",
    "config.middleware.CsrfViewMiddleware",
    "config.middleware.AuthenticationMiddleware",
    "config.middleware.MessageMiddleware",
    "config.middleware.XFrameOptionsMiddleware",
    # Turns django-axes' lockout of a sign-in into its answer (config.ratelimits.axes_lockout).
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"

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

# --- Database -------------------------------------------------------------------
DATABASES = {
    "default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'voicedesk.sqlite3'}"),
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The embedded run has a web server and a Celery worker writing to one file.
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 20,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
else:
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Redis: cache and channel layer ---------------------------------------------
REDIS_URL = env("REDIS_URL", default="")
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "voicedesk",
            # A dead Redis must show up as a failed check, not a hung request.
            "OPTIONS": {"socket_connect_timeout": 2, "socket_timeout": 2},
        }
    }
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [REDIS_URL], "prefix": "voicedesk"},
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

# --- Celery -----------------------------------------------------------------------
# The embedded broker names a host, which kombu's filesystem transport ignores: without one
# kombu warns "No hostname was supplied" whenever a command publishes a task.
CELERY_BROKER_URL = env("CELERY_BROKER_URL", default=REDIS_URL or "filesystem://localhost/")
if CELERY_BROKER_URL.startswith("filesystem://"):
    _broker_dir = VAR_DIR / "celery-broker"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "control_folder": str(_broker_dir / "control"),
        "processed_folder": str(_broker_dir / "processed"),
        "store_processed": False,
    }
    for _folder in ("queue", "control", "processed"):
        (_broker_dir / _folder).mkdir(parents=True, exist_ok=True)
else:
    CELERY_BROKER_TRANSPORT_OPTIONS = {"socket_connect_timeout": 2, "socket_timeout": 5}
CELERY_BROKER_CONNECTION_TIMEOUT = 2
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = "UTC"
CELERY_BEAT_SCHEDULE: dict = {}

# --- Auth, tenancy and secrets -----------------------------------------------------
AUTHENTICATION_BACKENDS = [
    # First: refuses a sign-in while its user name and address are locked out (failed passwords).
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
    # Role permissions inside a company, narrowed by django-guardian grants; the one
    # place object permissions are decided (tenants.models.TenantQuerySet.restrict).
    "tenants.backends.MembershipPermissionBackend",
]
# No anonymous guardian user: nothing is granted to anonymous visitors.
ANONYMOUS_USER_NAME = None
GUARDIAN_RAISE_403 = True
# guardian.W001 wants guardian's own backend; see tenants.checks for why it is not used.
# security.W001, W002 and W003 look for Django's security, clickjacking and CSRF middleware by
# their dotted paths; MIDDLEWARE lists this product's subclasses of them (config.middleware).
# tenants.checks runs those three, and every deploy check that depends on them (HSTS, SSL
# redirect, X-Frame-Options, nosniff, referrer and opener policy, the CSRF cookie), with the
# subclasses taken for the classes they extend; a missing one is still reported there.
SILENCED_SYSTEM_CHECKS = ["guardian.W001", "security.W001", "security.W002", "security.W003"]

# Fernet keys (urlsafe base64, 32 bytes), newest first. Secrets are written with the
# first and read with any, so a new key is added in front, `rotate_encryption_keys`
# run, and the old key dropped later. Empty: a key derived from DJANGO_SECRET_KEY.
FIELD_ENCRYPTION_KEYS = env.list("FIELD_ENCRYPTION_KEYS", default=[])

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# --- Providers (defaults for companies that set none of their own) ---------------
RETELL_API_KEY = env("RETELL_API_KEY", default="")
RETELL_BASE_URL = env("RETELL_BASE_URL", default="https://api.retellai.com")
RETELL_LLM_WEBSOCKET_URL = env("RETELL_LLM_WEBSOCKET_URL", default="")
ELEVENLABS_API_KEY = env("ELEVENLABS_API_KEY", default="")
ELEVENLABS_VOICE_ID = env("ELEVENLABS_VOICE_ID", default="21m00Tcm4TlvDq8ikWAM")
BACKEND_URL = env("BACKEND_URL", default="")
BACKEND_API_KEY = env("BACKEND_API_KEY", default="")
PUBLIC_BASE_URL = env("PUBLIC_BASE_URL", default="http://127.0.0.1:8000")
# Retell's published source address, required for companies that turn the check on.
RETELL_WEBHOOK_IPS = env.list("RETELL_WEBHOOK_IPS", default=["100.20.5.228"])
# After a webhook signing secret is replaced, the previous one still verifies for this long (0: not at all).
RETELL_WEBHOOK_SECRET_OVERLAP_SECONDS = env.int("RETELL_WEBHOOK_SECRET_OVERLAP_SECONDS", default=86400)
# The admin's webhook tester and function simulator (voice/tester.py): Retell's 10 s webhook timeout,
# and whether a configured URL in a private network (not this server's) may be tested.
WEBHOOK_TESTER_TIMEOUT_SECONDS = env.float("WEBHOOK_TESTER_TIMEOUT_SECONDS", default=10.0)
WEBHOOK_TESTER_CONNECT_TIMEOUT_SECONDS = env.float("WEBHOOK_TESTER_CONNECT_TIMEOUT_SECONDS", default=5.0)
WEBHOOK_TESTER_ALLOW_PRIVATE_TARGETS = env.bool("WEBHOOK_TESTER_ALLOW_PRIVATE_TARGETS", default=False)

# --- REST API ----------------------------------------------------------------------
# /api/v1/ (api/ and each app's api.py). Throttling is added here as DEFAULT_THROTTLE_CLASSES
# and DEFAULT_THROTTLE_RATES; the views set none of their own.
REST_FRAMEWORK = {
    "DEFAULT_SCHEMA_CLASS": "api.schema.AutoSchema",
    "DEFAULT_AUTHENTICATION_CLASSES": ["api.auth.ApiTokenAuthentication",
                                       "rest_framework.authentication.SessionAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    # Rate limits (config.ratelimits): per client address and per credential; rates in RATE_LIMITS.
    "DEFAULT_THROTTLE_CLASSES": ["config.ratelimits.AddressThrottle", "config.ratelimits.CredentialThrottle"],
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_PAGINATION_CLASS": "api.pagination.Cursor",
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "EXCEPTION_HANDLER": "api.errors.exception_handler",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "VoiceDesk API",
    "DESCRIPTION": "The REST API of VoiceDesk (README, \"REST API\"): Bearer API tokens or the admin session; "
                   "errors as {\"error\": {\"code\", \"message\"}}; ETag / If-Match on changes; cursor pages.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    # Swagger UI from the drf-spectacular-sidecar package: nothing is fetched from a CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "ENUM_NAME_OVERRIDES": {
        "AgentLanguageEnum": "retell_config.models.Agent.Language",
        "CompanyLanguageEnum": [("en", "English"), ("de", "German")],  # LANGUAGES
        "ProviderEnum": "audit.models.WebhookReceipt.Provider",
    },
}

# --- Internationalisation ----------------------------------------------------------
LANGUAGE_CODE = "en"
LANGUAGES = [("en", "English"), ("de", "German")]
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# --- Static files ------------------------------------------------------------------
STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
STATICFILES_DIRS = [BASE_DIR / "static"]
# WhiteNoise warns on every start when the folder is missing (before collectstatic).
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}

# --- Logging -----------------------------------------------------------------------
LOG_LEVEL = env("LOG_LEVEL", default="INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "request_id": {"()": "audit.log_filters.RequestIdLogFilter"},
        "secret_paths": {"()": "audit.log_filters.SecretPathFilter"},
        "refusals": {"()": "audit.log_filters.RefusalLogFilter"},
    },
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain",
                    "filters": ["request_id", "refusals", "secret_paths"]},
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        # httpx logs each request at INFO (the Retell SDK's, the speech providers'); the product
        # records its own exchanges (sync runs, attempts, the activity log), and commands print
        # only their own lines.
        "httpx": {"level": "WARNING"},
        # The twilio package logs every request and its headers at INFO; our client logs what matters.
        "twilio.http_client": {"level": "WARNING"},
        # django-axes announces itself at INFO whenever Django starts (every command).
        "axes": {"level": "WARNING"},
        # The MCP SDK logs every stateless request's transport at INFO ("Terminating session: None").
        "mcp": {"level": "WARNING"},
        # The ASGI server's connection and access lines carry paths: through our handler,
        # so agent socket tokens are masked there too.
        **{name: {"handlers": ["console"], "level": LOG_LEVEL, "propagate": False}
           for name in ("uvicorn", "uvicorn.error", "uvicorn.access")},
    },
}

# --- Webhooks, calls and forwarding to the practice backend (issue 4) ----------------
# Largest webhook body accepted (bytes); a larger one is answered 413 and only its first bytes are kept.
WEBHOOK_MAX_BODY_BYTES = env.int("WEBHOOK_MAX_BODY_BYTES", default=4 * 1024 * 1024)
# A verified receipt still unprocessed after this many seconds is processed by the sweeper.
RECEIPT_SWEEP_AFTER_SECONDS = env.int("RECEIPT_SWEEP_AFTER_SECONDS", default=30)
# Processing tries per receipt before it stays failed for a person to look at, and the backoff base.
RECEIPT_MAX_ATTEMPTS = env.int("RECEIPT_MAX_ATTEMPTS", default=8)
RECEIPT_RETRY_BASE_SECONDS = env.float("RECEIPT_RETRY_BASE_SECONDS", default=30)
# Outbound deliveries: tries before the dead letter, backoff base and cap, HTTP timeouts.
DELIVERY_MAX_ATTEMPTS = env.int("DELIVERY_MAX_ATTEMPTS", default=8)
DELIVERY_BACKOFF_BASE_SECONDS = env.float("DELIVERY_BACKOFF_BASE_SECONDS", default=10)
DELIVERY_BACKOFF_MAX_SECONDS = env.float("DELIVERY_BACKOFF_MAX_SECONDS", default=3600)
DELIVERY_CONNECT_TIMEOUT_SECONDS = env.float("DELIVERY_CONNECT_TIMEOUT_SECONDS", default=3)
DELIVERY_READ_TIMEOUT_SECONDS = env.float("DELIVERY_READ_TIMEOUT_SECONDS", default=10)
# Circuit breaker per backend host: failures in a row that open it, seconds before a trial.
DELIVERY_CIRCUIT_FAILURES = env.int("DELIVERY_CIRCUIT_FAILURES", default=5)
DELIVERY_CIRCUIT_RESET_SECONDS = env.float("DELIVERY_CIRCUIT_RESET_SECONDS", default=60)
# The sweeper re-queues a delivery in flight this long (its worker died) or due this long ago.
DELIVERY_STUCK_AFTER_SECONDS = env.int("DELIVERY_STUCK_AFTER_SECONDS", default=120)
DELIVERY_SWEEP_GRACE_SECONDS = env.int("DELIVERY_SWEEP_GRACE_SECONDS", default=30)
# The ASGI web process on PostgreSQL can take connections from psycopg's pool: each request,
# and each step of a live call that touches the database, runs in a thread of its own,
# and Django closes a connection after each (persistent connections would leak under
# ASGI), so without a pool each opens a new one. DATABASE_POOL_MAX_SIZE > 0 turns it on;
# 0 (the default) keeps a connection per step. Leave it 0 for Celery's forked workers.
DATABASE_POOL_MAX_SIZE = env.int("DATABASE_POOL_MAX_SIZE", default=0)
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql" and DATABASE_POOL_MAX_SIZE > 0:
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
        "min_size": min(env.int("DATABASE_POOL_MIN_SIZE", default=2), DATABASE_POOL_MAX_SIZE),
        "max_size": DATABASE_POOL_MAX_SIZE,
        "timeout": env.float("DATABASE_POOL_TIMEOUT", default=10.0),
    }
# Publish webhook processing tasks from a background thread (batching ids that arrive together),
# so no request waits on the broker.
TASK_PUBLISH_IN_BACKGROUND = env.bool("TASK_PUBLISH_IN_BACKGROUND", default=True)
TASK_PUBLISH_LINGER_SECONDS = env.float("TASK_PUBLISH_LINGER_SECONDS", default=0.1)
# Serve GET/POST /bench/noop (a 204 through the same middleware) for bench/webhook_bench.py only.
BENCH_TRIVIAL_VIEW = env.bool("BENCH_TRIVIAL_VIEW", default=False)
CELERY_BEAT_SCHEDULE.update({
    "receipts-sweep": {"task": "voice.receipts_sweep", "schedule": env.float("RECEIPT_SWEEP_EVERY_SECONDS", default=30)},
    "deliveries-sweep": {"task": "audit.deliveries_sweep",
                         "schedule": env.float("DELIVERY_SWEEP_EVERY_SECONDS", default=30)},
})

# --- Appointments (booking rules, pending holds) ----------------------------------
# A booking collected during a call is pending until call_ended; released after this many minutes.
APPOINTMENT_PENDING_TTL_MINUTES = env.int("APPOINTMENT_PENDING_TTL_MINUTES", default=30)
# Grid of the start times offered as alternatives, in minutes from each opening.
APPOINTMENT_SLOT_MINUTES = env.int("APPOINTMENT_SLOT_MINUTES", default=15)
# How many alternatives a taken slot answers with, and how many days ahead they are sought.
APPOINTMENT_ALTERNATIVES = env.int("APPOINTMENT_ALTERNATIVES", default=3)
APPOINTMENT_SEARCH_DAYS = env.int("APPOINTMENT_SEARCH_DAYS", default=14)
# Length of an appointment for companies that have no services configured.
APPOINTMENT_DEFAULT_DURATION_MINUTES = env.int("APPOINTMENT_DEFAULT_DURATION_MINUTES", default=30)
# Seconds a custom-function request that repeats its call's latest one is taken for a retry and gets
# the stored answer. Retell retries a failed or timed-out request up to 2 times, 120 s each by
# default: 3 x 120 covers the original and both retries. Later repeats run again.
CUSTOM_FUNCTION_RETRY_WINDOW_SECONDS = env.int("CUSTOM_FUNCTION_RETRY_WINDOW_SECONDS", default=360)
CELERY_BEAT_SCHEDULE["appointments-release-expired"] = {
    "task": "appointments.tasks.appointments_release_expired_task",
    "schedule": env.float("APPOINTMENT_RELEASE_INTERVAL_SECONDS", default=60.0),
}

# --- Live calls over Retell: the Custom LLM socket and the dialog engines (issue 5) ---------
# Seconds a plain /retell-llm/<call_id> connection waits for call_details to name its agent.
RETELL_LLM_CALL_DETAILS_TIMEOUT = env.float("RETELL_LLM_CALL_DETAILS_TIMEOUT", default=5.0)
# Seconds after a response with end_call before this server closes the socket (1000) itself.
RETELL_LLM_END_CALL_GRACE = env.float("RETELL_LLM_END_CALL_GRACE", default=20.0)
# Seconds a call's conversation state is kept in the cache for a reconnect.
RETELL_LLM_STATE_TTL = env.int("RETELL_LLM_STATE_TTL", default=3 * 3600)
# Seconds a tool (an appointment handler) may take before the caller hears it failed.
RETELL_LLM_TOOL_TIMEOUT = env.float("RETELL_LLM_TOOL_TIMEOUT", default=10.0)
# Seconds to connect to, and to wait for each streamed piece from, an OpenAI-compatible LLM.
LLM_CONNECT_TIMEOUT = env.float("LLM_CONNECT_TIMEOUT", default=3.0)
LLM_READ_TIMEOUT = env.float("LLM_READ_TIMEOUT", default=8.0)

# --- Retell configuration (retell_config): API client, circuit, sync ----------------------
# Read timeout and connect timeout of each Retell API call, in seconds.
RETELL_TIMEOUT_SECONDS = env.float("RETELL_TIMEOUT_SECONDS", default=15.0)
RETELL_CONNECT_TIMEOUT_SECONDS = env.float("RETELL_CONNECT_TIMEOUT_SECONDS", default=5.0)
# Retries of calls that only read (never of updates); the wait doubles from the backoff.
RETELL_MAX_RETRIES = env.int("RETELL_MAX_RETRIES", default=2)
RETELL_RETRY_BACKOFF_SECONDS = env.float("RETELL_RETRY_BACKOFF_SECONDS", default=0.5)
# Page size of the list endpoints (Retell allows up to 1000).
RETELL_PAGE_SIZE = env.int("RETELL_PAGE_SIZE", default=100)
# The circuit per company opens after this many failures in a row, and tries again after the reset.
RETELL_CIRCUIT_FAILURES = env.int("RETELL_CIRCUIT_FAILURES", default=5)
RETELL_CIRCUIT_RESET_SECONDS = env.float("RETELL_CIRCUIT_RESET_SECONDS", default=60.0)
# How often Celery beat syncs every company with Retell (drift is recorded, local changes kept).
RETELL_SYNC_INTERVAL_SECONDS = env.int("RETELL_SYNC_INTERVAL_SECONDS", default=900)
# Retell's voice list per company is cached this long; when Retell cannot be asked, the shipped
# catalogue is offered and asked again after RETELL_VOICES_RETRY_SECONDS.
RETELL_VOICES_CACHE_SECONDS = env.int("RETELL_VOICES_CACHE_SECONDS", default=3600)
RETELL_VOICES_RETRY_SECONDS = env.int("RETELL_VOICES_RETRY_SECONDS", default=60)
CELERY_BEAT_SCHEDULE["retell-sync-all-companies"] = {
    "task": "retell_config.tasks.sync_all_companies",
    "schedule": RETELL_SYNC_INTERVAL_SECONDS,
}
# --- Prompt A/B testing (experiments) ------------------------------------------------------
# How often Celery beat stops the experiments whose planned end has passed (seconds).
EXPERIMENTS_STOP_DUE_INTERVAL_SECONDS = env.float("EXPERIMENTS_STOP_DUE_INTERVAL_SECONDS", default=60.0)
CELERY_BEAT_SCHEDULE["experiments-stop-due"] = {
    "task": "experiments.tasks.experiments_stop_due",
    "schedule": EXPERIMENTS_STOP_DUE_INTERVAL_SECONDS,
}
# The JSON-RPC gateway's bounds: the largest body (bytes; larger: 413), the most calls in
# one batch and the deepest nesting of arrays and objects (more: one 400 error, nothing run).
GATEWAY_MAX_BODY_BYTES = env.int("GATEWAY_MAX_BODY_BYTES", default=1024 * 1024)
GATEWAY_MAX_BATCH = env.int("GATEWAY_MAX_BATCH", default=50)
GATEWAY_MAX_DEPTH = env.int("GATEWAY_MAX_DEPTH", default=64)

# --- Speech on the Twilio path (voice/speech; issue 14) ---------------------------------------
# The platform's speech providers; a company's own choice (in the admin) comes first.
# Speech-to-text: offline (pocketsphinx, English only) | elevenlabs (Scribe realtime) | openai
# (any OpenAI-compatible /audio/transcriptions). Text-to-speech: offline (eSpeak NG) | elevenlabs.
SPEECH_STT_PROVIDER = env("SPEECH_STT_PROVIDER", default="offline")
SPEECH_TTS_PROVIDER = env("SPEECH_TTS_PROVIDER", default="offline")
# ElevenLabs endpoints (tests point them at a loopback fake) and models.
ELEVENLABS_BASE_URL = env("ELEVENLABS_BASE_URL", default="https://api.elevenlabs.io")
ELEVENLABS_WS_URL = env("ELEVENLABS_WS_URL", default="wss://api.elevenlabs.io")
ELEVENLABS_TTS_MODEL = env("ELEVENLABS_TTS_MODEL", default="eleven_flash_v2_5")
ELEVENLABS_STT_MODEL = env("ELEVENLABS_STT_MODEL", default="scribe_v2_realtime")
# An OpenAI-compatible transcription server: its base URL ending in /v1, key and model.
STT_OPENAI_BASE_URL = env("STT_OPENAI_BASE_URL", default="")
STT_OPENAI_API_KEY = env("STT_OPENAI_API_KEY", default="")
STT_OPENAI_MODEL = env("STT_OPENAI_MODEL", default="whisper-1")
# Seconds to connect to a speech provider, and to wait for its answer (or each piece of it).
SPEECH_CONNECT_TIMEOUT = env.float("SPEECH_CONNECT_TIMEOUT", default=3.0)
SPEECH_READ_TIMEOUT = env.float("SPEECH_READ_TIMEOUT", default=10.0)
# eSpeak NG voices of the offline text-to-speech, per language (language[+variant]).
# Worker processes of the offline recogniser (pocketsphinx holds the GIL while it decodes, so it
# decodes outside the server's process); 0: in a thread of the server process.
OFFLINE_STT_PROCESSES = env.int("OFFLINE_STT_PROCESSES", default=2)
OFFLINE_VOICE_EN = env("OFFLINE_VOICE_EN", default="en-us+f2")
OFFLINE_VOICE_DE = env("OFFLINE_VOICE_DE", default="de+f2")
# Voice activity and end of turn: aggressiveness 0-3, and milliseconds of voice that start a
# turn, of silence that end it, and the longest turn.
VAD_AGGRESSIVENESS = env.int("VAD_AGGRESSIVENESS", default=2)
VAD_MIN_SPEECH_MS = env.int("VAD_MIN_SPEECH_MS", default=100)
VAD_END_SILENCE_MS = env.int("VAD_END_SILENCE_MS", default=700)
VAD_MAX_UTTERANCE_MS = env.int("VAD_MAX_UTTERANCE_MS", default=15000)

# --- Twilio: the voice webhooks, the REST client and the numbers (issue 14) --------------------
# Twilio's REST API (tests point it at a loopback fake); seconds each call may take.
TWILIO_API_BASE_URL = env("TWILIO_API_BASE_URL", default="https://api.twilio.com")
TWILIO_TIMEOUT_SECONDS = env.float("TWILIO_TIMEOUT_SECONDS", default=10.0)
# Retries of calls that only read (the numbers list), never of updates; the wait doubles.
TWILIO_MAX_RETRIES = env.int("TWILIO_MAX_RETRIES", default=2)
TWILIO_RETRY_BACKOFF_SECONDS = env.float("TWILIO_RETRY_BACKOFF_SECONDS", default=0.5)
# The circuit per company opens after this many failures in a row, and tries again after the reset.
TWILIO_CIRCUIT_FAILURES = env.int("TWILIO_CIRCUIT_FAILURES", default=5)
TWILIO_CIRCUIT_RESET_SECONDS = env.float("TWILIO_CIRCUIT_RESET_SECONDS", default=60.0)
# Seconds the one-time token of a call's media stream (a <Parameter> of the TwiML answer) is valid:
# Twilio opens the stream right after it reads the answer.
TWILIO_STREAM_TOKEN_TTL_SECONDS = env.int("TWILIO_STREAM_TOKEN_TTL_SECONDS", default=60)

# --- Rate limits (config.ratelimits; issue 15) ------------------------------------------------------
# Requests per period ("600/m": s, m, h, d; "5/10s") per limit, each overridable as
# RATE_LIMIT_<NAME> (e.g. RATE_LIMIT_WEBHOOK_COMPANY=12000/m; empty: not limited). The defaults keep
# far from a practice's call volume: Retell's addresses are never limited by address, and one call
# sends a few events and function calls a minute. Counted in the default cache (Redis in production).
_RATE_LIMIT_DEFAULTS = {
    "webhook.address": "600/m", "webhook.company": "6000/m",
    "function.address": "600/m", "function.agent": "1200/m",
    "gateway.address": "300/m", "gateway.token": "120/m",
    "api.address": "600/m", "api.credential": "300/m",
    "mcp.address": "300/m", "mcp.token": "120/m",
    "socket.address": "300/m", "socket.credential": "120/m",
    "admin_login.address": "30/m",
}
RATE_LIMITS = {name: env(f"RATE_LIMIT_{name.upper().replace('.', '_')}", default=rate)
               for name, rate in _RATE_LIMIT_DEFAULTS.items()}
RATE_LIMITS_ENABLED = env.bool("RATE_LIMITS_ENABLED", default=True)
REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"] = {name: RATE_LIMITS[name] for name in ("api.address", "api.credential")}
# A cache that cannot be reached limits nothing (the endpoints keep answering; receipts keep being stored).
RATELIMIT_FAIL_OPEN = True
# django-axes: failed admin sign-ins per user name and address, counted in the cache; the lockout
# ends after the cool-off and is answered 429 (config.ratelimits.axes_lockout).
# The embedded run's local-memory cache is its web process's alone: there attempts go to the database.
AXES_HANDLER = "axes.handlers.cache.AxesCacheHandler" if REDIS_URL else "axes.handlers.database.AxesDatabaseHandler"
AXES_FAILURE_LIMIT = env.int("AXES_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = timedelta(minutes=env.int("AXES_COOLOFF_MINUTES", default=15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_CLIENT_IP_CALLABLE = "audit.middleware.client_ip"
AXES_LOCKOUT_CALLABLE = "config.ratelimits.axes_lockout"
AXES_RESET_ON_SUCCESS = True
# The attempts live in the cache (or, embedded, in tables no one needs to browse): no admin pages for them.
AXES_ENABLE_ADMIN = False
# The media-stream socket: audio is sent in real time with this lead (seconds) ahead of what the
# caller hears (so a barge-in's clear drops little); the caller is reminded after this many seconds
# of silence; a socket without Twilio's `start` within the timeout is closed (1008).
TWILIO_PLAYBACK_LEAD_SECONDS = env.float("TWILIO_PLAYBACK_LEAD_SECONDS", default=0.2)
TWILIO_REMINDER_SECONDS = env.float("TWILIO_REMINDER_SECONDS", default=8.0)
TWILIO_START_TIMEOUT_SECONDS = env.float("TWILIO_START_TIMEOUT_SECONDS", default=5.0)
