"""Logging set-up shared by every process (API, worker, relay, CLI)."""

from __future__ import annotations

import logging

from onetrip.settings import get_settings

FORMAT = "%(asctime)s %(levelname)s %(process)d %(name)s: %(message)s"


def configure_logging() -> None:
    """Log to stderr at ONETRIP_LOG_LEVEL; quiet the chattiest libraries.

    Does nothing to a root logger that already has handlers (tests, embedding)."""
    level = get_settings().log_level.upper()
    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig(level=level, format=FORMAT)
    # pika logs every connection step at INFO; httpx every request.
    for name in ("pika", "httpx", "httpcore"):
        logging.getLogger(name).setLevel(max(logging.WARNING, logging.getLevelName(level)))
