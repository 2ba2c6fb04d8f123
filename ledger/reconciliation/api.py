"""`/api/v1/reconciliation`: importing Stripe's and the banks' records, and the banks'
CSV mapping profiles (finance keys for all departments, or admin keys).

Why not a finance key bound to departments: what is imported is platform-wide data.
One Stripe balance transaction list, one payout report and one bank statement carry
the money of every department at once, and a record is not yet matched to any
department when it arrives (matching does that later). Letting a department-bound key
import would let it write — and by the summary's totals, read — other departments'
money; so only keys that already see every department may.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Annotated, Any

from litestar import Controller, get, post
from litestar.datastructures import UploadFile
from litestar.di import Provide
from litestar.enums import RequestEncodingType
from litestar.params import Body, Parameter
from litestar.status_codes import HTTP_201_CREATED

from ledger.reconciliation import imports, profiles
from ledger.reconciliation.csvfiles import Profile
from ledger.schemas import (
    ImportOut,
    ImportPage,
    ImportTotalOut,
    ProfileIn,
    ProfileOut,
    ProfilePage,
)
from onetrip.auth import Principal, finance_key
from onetrip.db import get_database, unit_of_work
from onetrip.errors import Forbidden
from onetrip.openapi import documented
from onetrip.pagination import MAX_LIMIT, check_limit

#: bytes an uploaded statement may have (larger files: `onetrip reconcile import`)
IMPORT_BODY_LIMIT = 64 * 1024 * 1024

IMPORT_ERRORS = [
    "import_invalid_line",
    "import_bad_amount",
    "import_bad_date",
    "import_wrong_currency",
    "import_currency_required",
    "import_missing_columns",
    "import_wrong_encoding",
    "import_duplicate_lines",
    "import_not_camt053",
    "import_unknown_source",
    "import_profile_required",
    "import_file_required",
    "import_unexpected_file",
]


def platform_wide(principal: Principal) -> Principal:
    """Admin or a finance key for all departments (see the module's docstring)."""
    if principal.role != "admin" and not principal.all_departments:
        raise Forbidden(
            "imports are platform-wide data (Stripe, bank statements): only a finance key "
            "for all departments or an admin key may import or read them",
            code="import_needs_all_departments",
        )
    return principal


def who(principal: Principal) -> str:
    return f"key:{principal.key_id}"


def import_out(summary: imports.ImportSummary) -> ImportOut:
    return ImportOut(
        id=summary.id,
        source=summary.source,
        namespace=summary.namespace,
        file_name=summary.file_name,
        sha256=summary.sha256,
        profile=summary.profile,
        currency=summary.currency,
        imported_by=summary.imported_by,
        imported_at=summary.imported_at,
        lines=summary.lines,
        new_records=summary.new_records,
        duplicates=summary.duplicates,
        totals={code: ImportTotalOut(**total) for code, total in summary.totals.items()},
        summary=f"{summary.new_records} new, {summary.duplicates} already imported",
    )


def profile_out(profile: Profile) -> ProfileOut:
    return ProfileOut(**{**asdict(profile), "columns": dict(profile.columns or {})})


@dataclass
class ImportForm:
    #: stripe_balance (from the Stripe API: send no file) | stripe_payout_recon |
    #: bank_csv (with `profile`) | camt053
    source: str
    file: UploadFile | None = None
    profile: str | None = None
    #: the currency every line must be in (e.g. CNY); a line in another is refused
    currency: str | None = None


IMPORT_EXAMPLE = {
    "id": "imp_01jf3k2m9q8w7e6r5t4y3u2i1o",
    "source": "bank_csv",
    "namespace": "bank:ICBC",
    "file_name": "工商银行对账单-2026-11.csv",
    "sha256": "9f2c0d8a6b1e4f7a9c3d5e7f1a2b4c6d8e0f1a3b5c7d9e1f3a5b7c9d1e3f5a7b",
    "profile": "icbc-hangzhou",
    "currency": "CNY",
    "imported_by": "key:3f9a1c0e5b7d2a48",
    "imported_at": "2026-12-01T02:15:00Z",
    "lines": 30,
    "new_records": 30,
    "duplicates": 0,
    "totals": {"CNY": {"lines": 30, "amount": 1260000, "new_lines": 30, "new_amount": 1260000}},
    "summary": "30 new, 0 already imported",
}

PROFILE_EXAMPLE = {
    "name": "icbc-hangzhou",
    "bank": "ICBC",
    "columns": {
        "booked_on": "交易日期",
        "amount": "金额",
        "counterparty": "对方户名",
        "reference": "摘要",
        "external_id": "流水号",
    },
    "encoding": "gbk",
    "delimiter": ",",
    "date_format": "%Y-%m-%d",
    "decimal_separator": ".",
    "thousands_separator": ",",
    "sign_convention": "signed",
    "currency": "CNY",
    "skip_rows": 0,
}


class ReconciliationController(Controller):
    path = "/api/v1/reconciliation"
    tags = ["finance"]
    dependencies = {"principal": Provide(finance_key)}

    @post(
        "/imports",
        summary="Import Stripe's or a bank's records (one transaction: all lines or none)",
        status_code=HTTP_201_CREATED,
        request_max_body_size=IMPORT_BODY_LIMIT,
        opt=documented(
            errors={
                400: ["bad_request"],  # not multipart/form-data
                403: ["import_needs_all_departments"],
                404: ["profile_not_found"],
                # a Stripe fee or payout dated inside a closed period (booked on import)
                409: ["period_closed"],
                422: IMPORT_ERRORS,
                502: ["stripe_error", "gateway_not_configured"],
            },
            response_example=IMPORT_EXAMPLE,
        ),
    )
    async def create_import(
        self,
        principal: Principal,
        data: Annotated[ImportForm, Body(media_type=RequestEncodingType.MULTI_PART)],
    ) -> ImportOut:
        platform_wide(principal)
        upload = data.file if isinstance(data.file, UploadFile) else None
        try:
            async with unit_of_work() as session:
                summary = await imports.import_file(
                    session,
                    source=data.source,
                    file=upload.file if upload is not None else None,  # type: ignore[arg-type]
                    file_name=upload.filename[:255] if upload is not None else None,
                    imported_by=who(principal),
                    profile=data.profile or None,
                    currency=data.currency,
                )
        finally:
            if upload is not None:
                await upload.close()
        return import_out(summary)

    @get(
        "/imports",
        summary="Imports, newest first",
        opt=documented(errors={403: ["import_needs_all_departments"]}),
    )
    async def list_imports(
        self,
        principal: Principal,
        limit: int | None = Parameter(
            ge=1, le=MAX_LIMIT, required=False, description=f"1..{MAX_LIMIT}, default 50"
        ),
        cursor: str | None = Parameter(
            required=False, description="next_cursor of the previous page"
        ),
    ) -> ImportPage:
        platform_wide(principal)
        async with get_database().session() as session:
            rows = await imports.list_imports(session, cursor=cursor, limit=limit)
        size = check_limit(limit)
        more = len(rows) > size
        rows = rows[:size]
        return ImportPage(
            data=[import_out(r) for r in rows], next_cursor=rows[-1].id if more and rows else None
        )

    @get(
        "/imports/{import_id:str}",
        summary="One import: who, when, what, and how many lines were new",
        opt=documented(
            errors={403: ["import_needs_all_departments"], 404: ["import_not_found"]},
            response_example=IMPORT_EXAMPLE,
        ),
    )
    async def get_import(self, principal: Principal, import_id: str) -> ImportOut:
        platform_wide(principal)
        async with get_database().session() as session:
            return import_out(await imports.get_import(session, import_id))

    @post(
        "/profiles",
        summary="Save a bank's CSV mapping profile",
        status_code=HTTP_201_CREATED,
        opt=documented(
            errors={
                403: ["import_needs_all_departments"],
                409: ["profile_exists"],
                422: ["invalid_profile"],
            },
            request_example=PROFILE_EXAMPLE,
            response_example=PROFILE_EXAMPLE,
        ),
    )
    async def create_profile(self, principal: Principal, data: ProfileIn) -> ProfileOut:
        platform_wide(principal)
        profile = Profile(
            name=data.name,
            bank=data.bank,
            encoding=data.encoding,
            delimiter=data.delimiter,
            date_format=data.date_format,
            decimal_separator=data.decimal_separator,
            thousands_separator=data.thousands_separator,
            sign_convention=data.sign_convention,
            columns={k: v for k, v in _columns(data).items() if v},
            currency=data.currency,
            skip_rows=data.skip_rows,
        )
        async with unit_of_work() as session:
            saved = await profiles.create_profile(session, profile, who(principal))
        return profile_out(saved)

    @get(
        "/profiles",
        summary="The saved CSV mapping profiles, by name",
        opt=documented(errors={403: ["import_needs_all_departments"]}),
    )
    async def list_profiles(self, principal: Principal) -> ProfilePage:
        platform_wide(principal)
        async with get_database().session() as session:
            saved = await profiles.list_profiles(session)
        return ProfilePage(data=[profile_out(p) for p in saved], next_cursor=None)


def _columns(data: ProfileIn) -> dict[str, Any]:
    import msgspec

    return msgspec.structs.asdict(data.columns)


routes: list[Any] = [ReconciliationController]
