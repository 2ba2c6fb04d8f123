"""Verification of printed licences: the JWKS, and `/verify/{code}` for people (HTML)
and programs (`Accept: application/json`). No key: anyone holding a licence may check it.
"""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Controller, MediaType, Request, Response, get
from litestar.response import Template

from delivery import signing
from delivery.schemas import JwkSet, VerificationOut
from onetrip.db import get_database, unit_of_work
from onetrip.i18n import page_language
from onetrip.openapi import documented

TEXT = {
    "zh-CN": {
        "title": "证照核验",
        "genuine": "证照真实有效",
        "genuine_revoked": "证照真实，但已被吊销",
        "genuine_expired": "证照真实，但已过有效期",
        "not_genuine": "无法核验：该二维码不是本平台签发的证照",
        "not_genuine_note": (
            "二维码内容不完整、被改动或伪造。请勿采信该证照，并可联系发证机关核实。"
        ),
        "status": "状态",
        "valid": "有效",
        "revoked": "已吊销",
        "expired": "已过期",
        "license_no": "证照编号",
        "license_title": "证照名称",
        "holder": "持证人",
        "department": "发证机关",
        "validity": "有效期限",
        "no_expiry": "长期",
        "to": "至",
        "note": "请核对上述信息与证照原件是否一致；持证人姓名已部分隐去。",
        "offline": "二维码经 Ed25519 数字签名，也可使用公开密钥离线核验：",
        "switch": "English",
    },
    "en": {
        "title": "Verify a licence",
        "genuine": "This licence is genuine and valid",
        "genuine_revoked": "This licence is genuine but has been revoked",
        "genuine_expired": "This licence is genuine but has expired",
        "not_genuine": "Not verified: this code was not issued by OneTrip",
        "not_genuine_note": (
            "The code is incomplete, altered or forged. Do not rely on this licence; "
            "the issuing department can tell you more."
        ),
        "status": "Status",
        "valid": "Valid",
        "revoked": "Revoked",
        "expired": "Expired",
        "license_no": "Licence No.",
        "license_title": "Licence",
        "holder": "Holder",
        "department": "Issued by",
        "validity": "Valid",
        "no_expiry": "no expiry",
        "to": "to",
        "note": (
            "Check that these details match the printed licence; "
            "the holder's name is partly hidden."
        ),
        "offline": (
            "The code is signed with Ed25519 and can also be checked offline with the public keys:"
        ),
        "switch": "中文",
    },
}


def _wants_json(request: Request[Any, Any, Any]) -> bool:
    accept = request.headers.get("accept", "")
    if "json" not in accept:
        return False
    return request.accept.best_match(["text/html", "application/json"]) == "application/json"


def verification_view(result: signing.Verification) -> VerificationOut:
    license = result.license
    return VerificationOut(
        genuine=True,
        status=result.status,
        license_no=license.license_no,
        title=license.title,
        holder_name=signing.mask_name(license.holder_name),
        department=license.department,
        department_name=result.department_name,
        valid_from=license.valid_from,
        valid_until=license.valid_until,
    )


#: the JSON answer's schema, inline (the operation's success response has two media types)
_VIEW_SCHEMA = msgspec.json.schema_components([VerificationOut])[1]["VerificationOut"]


class VerificationController(Controller):
    path = ""
    tags = ["verification"]

    @get(
        "/.well-known/jwks.json",
        summary="Public keys that sign licence verification codes (JWKS, Ed25519)",
        security=[],
        cache_control=None,
    )
    async def jwks(self) -> Response[JwkSet]:
        # a write on first use: the current key's public half is registered
        async with unit_of_work() as session:
            document = await signing.jwks_document(session)
        return Response(
            msgspec.convert(document, JwkSet),
            headers={"Cache-Control": "public, max-age=300"},
        )

    @get(
        "/verify/{code:str}",
        summary="Is this licence genuine, and is it still valid? (HTML, or JSON)",
        security=[],
        media_type=MediaType.HTML,
        opt=documented(
            errors={404: ["verify_code_invalid"]},
            response_content={"text/html": {"type": "string"}, "application/json": _VIEW_SCHEMA},
        ),
    )
    async def verify(self, request: Request[Any, Any, Any], code: str) -> Response[Any]:
        """HTML for people; `Accept: application/json` gives `VerificationOut`. A forged,
        altered or truncated code is a 404 (problem+json `genuine: false`, or a page)."""
        as_json = _wants_json(request)
        try:
            async with get_database().session() as session:
                result = await signing.check_code(session, code)
        except signing.InvalidCode:
            if as_json:
                raise
            return self._page(request, None, status_code=404)
        if as_json:
            return Response(
                verification_view(result),
                media_type=MediaType.JSON,
                headers={"Cache-Control": "no-store"},
            )
        return self._page(request, result)

    def _page(
        self,
        request: Request[Any, Any, Any],
        result: signing.Verification | None,
        *,
        status_code: int = 200,
    ) -> Template:
        lang = page_language(
            request.query_params, None, TEXT, request.headers.get("accept-language")
        )
        other = "en" if lang == "zh-CN" else "zh-CN"
        return Template(
            template_name="verify.html",
            context={
                "t": TEXT[lang],
                "lang": lang,
                "other_lang": other,
                "v": verification_view(result) if result else None,
                "jwks_url": "/.well-known/jwks.json",
                "department_name": result.department_name if result else "",
            },
            status_code=status_code,
            headers={"Cache-Control": "no-store"},
            media_type=MediaType.HTML,
        )


routes: list[Any] = [VerificationController]
