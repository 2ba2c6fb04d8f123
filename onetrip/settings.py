"""Settings read once from the environment.

Every variable is listed in the README. The usual unprefixed names (DATABASE_URL,
BROKER_URL, STRIPE_*, SMTP_URL) are honoured as well as the ONETRIP_ ones.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path


def _env(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value


def _bool(name: str, default: bool = False) -> bool:
    value = _env(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def _int(name: str, default: int) -> int:
    value = _env(name)
    return default if value is None else int(value)


def async_database_url(url: str) -> str:
    """Turn the usual `postgresql://` or `sqlite:///` forms into async driver URLs."""
    if url.startswith(("postgres://", "postgresql://")):
        return "postgresql+asyncpg://" + url.split("://", 1)[1]
    if url.startswith("postgresql+psycopg://") or url.startswith("postgresql+psycopg2://"):
        return "postgresql+asyncpg://" + url.split("://", 1)[1]
    if url.startswith("sqlite://") and not url.startswith("sqlite+aiosqlite://"):
        return "sqlite+aiosqlite://" + url.split("://", 1)[1]
    return url


@dataclass(frozen=True)
class Settings:
    database_url: str
    broker_url: str | None
    stripe_api_key: str | None
    stripe_webhook_secret: str | None
    stripe_api_base: str | None
    stripe_publishable_key: str
    stripe_js_url: str
    smtp_url: str | None
    email_from: str  # the From of every email ("Name <address>")
    smtp_timeout: float  # seconds for each SMTP step (connect, each command, DATA)
    # SMS providers, "name=https://url#KEY,name=…" or a JSON list (notifications/channels/sms)
    sms_providers: str | None
    sms_timeout: float  # seconds per SMS provider request
    public_url: str
    host: str
    port: int
    payment_expiry_minutes: int
    print_interval: int
    spool_dir: Path
    cjk_font_path: str | None
    cjk_fallback_fonts: str | None  # font specs separated by os.pathsep
    courier_simulator: bool
    webhook_allow_private: bool
    webhook_timeout: float
    relay_interval: float
    stuck_payment_after_minutes: int
    log_level: str
    db_pool_size: int
    rate_limit: float  # requests a second per API key (burst twice that); 0: no limit
    page_rate_limit: float  # requests a second per client address on applicant pages
    rate_limit_url: str | None  # Redis for buckets shared by every process
    # print station → printer, "default=spool:,PSB=ipp://host:631/printers/NAME" (the
    # default spool folder when unset; delivery/printers parses it)
    printers: str | None
    # PEM file of the Ed25519 key signing licence verify codes (None: data folder)
    signing_key_path: str | None
    # the simulated courier (ONETRIP_COURIER_SIMULATOR): its courier key, bound to the
    # partner it acts as (`onetrip demo` sets it in-process), and seconds between steps
    courier_simulator_key: str | None
    courier_simulator_step: float

    @property
    def embedded_broker(self) -> bool:
        return self.broker_url is None

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def gateway(self) -> str:
        """Which online gateway takes card payments: Stripe when a key is configured."""
        return "stripe" if self.stripe_api_key else "sandbox"


def load_settings() -> Settings:
    raw_db = _env("DATABASE_URL") or _env("ONETRIP_DATABASE_URL") or "sqlite:///onetrip.db"
    port = _int("ONETRIP_PORT", 8000)
    host = _env("ONETRIP_HOST", "127.0.0.1") or "127.0.0.1"
    return Settings(
        database_url=async_database_url(raw_db),
        broker_url=_env("BROKER_URL") or _env("ONETRIP_BROKER_URL"),
        stripe_api_key=_env("STRIPE_API_KEY"),
        stripe_webhook_secret=_env("STRIPE_WEBHOOK_SECRET"),
        stripe_api_base=_env("STRIPE_API_BASE"),
        stripe_publishable_key=_env("STRIPE_PUBLISHABLE_KEY", "pk_test_onetrip") or "",
        stripe_js_url=_env("STRIPE_JS_URL", "https://js.stripe.com/v3/") or "",
        smtp_url=_env("SMTP_URL"),
        email_from=_env("ONETRIP_EMAIL_FROM", "OneTrip <no-reply@onetrip.localhost>") or "",
        smtp_timeout=float(_env("ONETRIP_SMTP_TIMEOUT", "30") or "30"),
        sms_providers=_env("ONETRIP_SMS_PROVIDERS"),
        sms_timeout=float(_env("ONETRIP_SMS_TIMEOUT", "10") or "10"),
        public_url=(_env("ONETRIP_PUBLIC_URL") or f"http://{host}:{port}").rstrip("/"),
        host=host,
        port=port,
        payment_expiry_minutes=_int("ONETRIP_PAYMENT_EXPIRY_MINUTES", 90),
        print_interval=_int("ONETRIP_PRINT_INTERVAL", 60),
        spool_dir=Path(_env("ONETRIP_SPOOL_DIR", "spool") or "spool"),
        cjk_font_path=_env("ONETRIP_CJK_FONT"),
        cjk_fallback_fonts=_env("ONETRIP_CJK_FALLBACK_FONTS"),
        courier_simulator=_bool("ONETRIP_COURIER_SIMULATOR"),
        webhook_allow_private=_bool("ONETRIP_WEBHOOK_ALLOW_PRIVATE"),
        webhook_timeout=float(_env("ONETRIP_WEBHOOK_TIMEOUT", "10") or "10"),
        relay_interval=float(_env("ONETRIP_RELAY_INTERVAL", "0.1") or "0.1"),
        stuck_payment_after_minutes=_int("ONETRIP_STUCK_PAYMENT_MINUTES", 15),
        log_level=_env("ONETRIP_LOG_LEVEL", "INFO") or "INFO",
        db_pool_size=_int("ONETRIP_DB_POOL_SIZE", 20),
        rate_limit=float(_env("ONETRIP_RATE_LIMIT", "50") or "50"),
        page_rate_limit=float(_env("ONETRIP_PAGE_RATE_LIMIT", "10") or "10"),
        rate_limit_url=_rate_limit_url(),
        printers=_env("ONETRIP_PRINTERS"),
        signing_key_path=_env("ONETRIP_SIGNING_KEY"),
        courier_simulator_key=_env("ONETRIP_COURIER_SIMULATOR_KEY"),
        courier_simulator_step=float(_env("ONETRIP_COURIER_SIMULATOR_STEP", "15") or "15"),
    )


def _rate_limit_url() -> str | None:
    """ONETRIP_RATE_LIMIT_URL, else a Redis BROKER_URL: shared buckets when scaled out."""
    url = _env("ONETRIP_RATE_LIMIT_URL")
    if url is None:
        broker = _env("BROKER_URL") or _env("ONETRIP_BROKER_URL") or ""
        return broker if broker.startswith(("redis://", "rediss://")) else None
    if not url.startswith(("redis://", "rediss://", "unix://")):
        raise ValueError("ONETRIP_RATE_LIMIT_URL must be a redis:// (or rediss://) URL")
    return url


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return load_settings()


def reset_settings() -> None:
    """Forget the cached settings (tests change the environment between apps)."""
    get_settings.cache_clear()
