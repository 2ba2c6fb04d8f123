"""The spool folder printer (the embedded default): one PDF file per print run.

A print-room operator (or a watched-folder print server) prints the files that appear.
Each is written whole or not at all: to a hidden temporary name in the same folder,
flushed to disk, then renamed, so a reader never sees half a run. The job id is the
file name; sending the same title again replaces the file with the same bytes.
"""

from __future__ import annotations

import asyncio
import os
import re
from pathlib import Path

from delivery.printers import PrintAnswer, PrinterError

_UNSAFE = re.compile(r"[^A-Za-z0-9_.\-]")


class SpoolPrinter:
    def __init__(self, folder: Path) -> None:
        self.folder = folder.resolve()
        self.uri = f"spool:{self.folder}"

    def path_of(self, job_id: str) -> Path:
        return self.folder / job_id

    async def send(self, document: bytes, *, title: str, copies: int = 1) -> PrintAnswer:
        name = _UNSAFE.sub("_", title) + ".pdf"
        # A folder has no "copies": one file, and whoever prints it is told how many.
        try:
            await asyncio.to_thread(self._write, name, document)
        except OSError as exc:
            raise PrinterError(f"cannot write {self.folder / name}: {exc}") from exc
        detail = str(self.folder / name) + (f" ({copies} copies)" if copies > 1 else "")
        return PrintAnswer(job_id=name, state="spooled", detail=detail)

    async def status(self, job_id: str) -> PrintAnswer:
        # a file the operator has taken away (printed) is no longer in the folder
        state = "spooled" if self.path_of(job_id).exists() else "taken"
        return PrintAnswer(job_id=job_id, state=state, detail=str(self.path_of(job_id)))

    def _write(self, name: str, document: bytes) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        temporary = self.folder / f".{name}.{os.getpid()}.tmp"
        with open(temporary, "wb") as out:
            out.write(document)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, self.folder / name)
        _fsync_folder(self.folder)


def _fsync_folder(folder: Path) -> None:
    """Make the rename itself durable (the folder's entry), where the OS allows it."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
