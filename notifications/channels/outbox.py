"""The embedded adapters' folder: what would have been sent, written to disk.

Without SMTP_URL (or SMS providers) the service still "sends": each email is written as
an `.eml` file and each SMS as one line of a log, under `{data folder}/outbox/`, so a
developer (or `onetrip demo`) sees what would have gone out. The data folder is the one
the service keeps its other local files in: beside the SQLite file, else beside the
print spool folder (the same rule as the licence signing key).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from onetrip.settings import Settings


def data_folder(settings: Settings) -> Path:
    """The folder beside the SQLite file, or (another database) beside the spool."""
    folder = Path(settings.spool_dir).resolve().parent
    url = settings.database_url
    if settings.is_sqlite and ":///" in url:
        database_file = url.split(":///", 1)[1].split("?", 1)[0]
        if database_file and database_file != ":memory:":
            folder = Path(database_file).resolve().parent
    return folder


def outbox_folder(settings: Settings) -> Path:
    """`{data folder}/outbox`: `email/*.eml` and `sms.log` live here."""
    return data_folder(settings) / "outbox"


def write_atomically(path: Path, content: bytes) -> None:
    """Write `content` to `path` whole or not at all (a reader never sees half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(content)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
