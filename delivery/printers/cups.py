"""CUPS (or any IPP printer) at `ipp://host:631/printers/NAME`, through `pyipp`.

Why pyipp and not CUPS' own `lp -h host:631 -d NAME`: it speaks IPP itself, so the
service needs no CUPS client programs installed where it runs (a slim container), it is
async like the rest of the worker (no subprocess per run), and the printer's answer —
the job id and its `job-state` — comes back as data instead of being parsed from `lp`'s
"request id is PDF-3 (1 file(s))" text. Any IPP Everywhere printer works the same way.
"""

from __future__ import annotations

from typing import Any

from pyipp import IPP
from pyipp.enums import IppJobState, IppOperation
from pyipp.exceptions import IPPError

from delivery.printers import PrintAnswer, PrinterError

#: a run of a few hundred licences is a few MB: more than pyipp's 8 s default may pass
REQUEST_TIMEOUT = 60
#: IPP natural languages are lower case; CUPS refuses pyipp's default "en-US"
_LANGUAGE = "en"
_USER = "onetrip"


def _state(value: Any) -> str:
    try:
        return IppJobState(int(value)).name.lower()
    except (TypeError, ValueError):
        return str(value)


class IppPrinter:
    def __init__(self, uri: str) -> None:
        self.uri = uri

    async def _execute(self, operation: IppOperation, message: dict[str, Any]) -> dict[str, Any]:
        base = {
            "operation-attributes-tag": {
                "attributes-natural-language": _LANGUAGE,
                "requesting-user-name": _USER,
            }
        }
        base["operation-attributes-tag"].update(message.pop("operation-attributes-tag", {}))
        try:
            async with IPP(self.uri, request_timeout=REQUEST_TIMEOUT) as ipp:
                return await ipp.execute(operation, {**base, **message})
        except IPPError as exc:
            detail = exc.args[1] if len(exc.args) > 1 else None
            status = detail.get("status-code") if isinstance(detail, dict) else None
            code = f" (IPP status 0x{status:04x})" if isinstance(status, int) else ""
            raise PrinterError(f"{self.uri}: {exc.args[0] if exc.args else exc}{code}") from exc

    async def send(self, document: bytes, *, title: str, copies: int = 1) -> PrintAnswer:
        answer = await self._execute(
            IppOperation.PRINT_JOB,
            {
                "operation-attributes-tag": {
                    "job-name": title,
                    "document-format": "application/pdf",
                },
                "job-attributes-tag": {"copies": copies},
                "data": document,
            },
        )
        job = _first_job(answer, self.uri)
        return PrintAnswer(
            job_id=str(job["job-id"]), state=_state(job.get("job-state")), detail=job.get("job-uri")
        )

    async def status(self, job_id: str) -> PrintAnswer:
        answer = await self._execute(
            IppOperation.GET_JOB_ATTRIBUTES,
            {
                "operation-attributes-tag": {
                    "job-id": int(job_id),
                    "requested-attributes": ["job-state", "job-state-reasons"],
                }
            },
        )
        job = _first_job(answer, self.uri, need_id=False)
        reasons = job.get("job-state-reasons")
        if isinstance(reasons, list):
            reasons = ", ".join(map(str, reasons))
        return PrintAnswer(job_id=job_id, state=_state(job.get("job-state")), detail=reasons)


def _first_job(answer: dict[str, Any], uri: str, *, need_id: bool = True) -> dict[str, Any]:
    jobs = answer.get("jobs") or []
    if not jobs or (need_id and "job-id" not in jobs[0]):
        raise PrinterError(f"{uri}: the printer's answer names no job")
    job: dict[str, Any] = jobs[0]
    return job
