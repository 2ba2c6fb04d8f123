"""Printers: where a print run's PDF goes, behind one small protocol.

A print station (a department's window, or "default") has one printer, configured by
`ONETRIP_PRINTERS` ("default=spool:,PSB=ipp://127.0.0.1:631/printers/PDF"):

- `spool:` — a folder per station under `ONETRIP_SPOOL_DIR` (the embedded default);
  `spool:/some/folder` — that folder;
- `ipp://host:631/printers/NAME` (or `ipps://`) — a CUPS/IPP queue.

A station the setting does not name prints on the `default` entry, and without one on
the default spool folder. A printer raises `PrinterError` when it did not take the
document; the print run records it and the next tick sends again.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from onetrip.settings import get_settings

DEFAULT_STATION = "default"


@dataclass(frozen=True)
class PrintAnswer:
    """What a printer said when it took a document."""

    job_id: str
    state: str  # "spooled", or the IPP job-state: "pending", "processing", "completed"…
    detail: str | None = None


class PrinterError(Exception):
    """The printer did not take the document (unreachable, refused it)."""


class Printer(Protocol):
    #: where documents go, as recorded on the print run: "spool:/path" or "ipp://…"
    uri: str

    async def send(self, document: bytes, *, title: str, copies: int = 1) -> PrintAnswer:
        """Hand over one PDF; returns once the printer has taken it (or raises
        PrinterError). Sending the same title twice must not lose the first."""
        ...

    async def status(self, job_id: str) -> PrintAnswer:
        """The job's state now, as the printer reports it."""
        ...


def parse_printers(spec: str | None) -> dict[str, str]:
    """`ONETRIP_PRINTERS` as {station: printer uri}; ValueError names what is wrong."""
    printers: dict[str, str] = {}
    for entry in (spec or "").split(","):
        entry = entry.strip()
        if not entry:
            continue
        station, sep, uri = entry.partition("=")
        station, uri = station.strip(), uri.strip()
        if not sep or not station or not uri:
            raise ValueError(f"ONETRIP_PRINTERS: {entry!r} is not station=printer")
        if not uri.startswith(("spool:", "ipp://", "ipps://")):
            raise ValueError(
                f"ONETRIP_PRINTERS: {station}'s printer {uri!r} is not spool:[folder],"
                " ipp://… or ipps://…"
            )
        printers[station] = uri
    return printers


def printer_uri(station: str) -> str:
    """The configured printer of `station` (the default's when it has none of its own)."""
    printers = parse_printers(get_settings().printers)
    return printers.get(station) or printers.get(DEFAULT_STATION) or "spool:"


def printer_for(station: str) -> Printer:
    """The printer the station's print runs go to."""
    uri = printer_uri(station)
    if uri.startswith("spool:"):
        from delivery.printers.spool import SpoolPrinter

        folder = uri.removeprefix("spool:")
        root = Path(folder) if folder else get_settings().spool_dir / station
        return SpoolPrinter(root)
    from delivery.printers.cups import IppPrinter

    return IppPrinter(uri)
