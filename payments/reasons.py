"""Why a payment failed or closed, in the applicant's words (zh-CN and en).

`payment.failure_reason` keeps what the gateway or our own code said (Stripe's English
message or decline code, the sandbox card's label, "expired", "cancelled by
department"): it is the department's record. Applicant pages never show it raw: a
known reason becomes its translated message, anything else the generic one.
"""

from __future__ import annotations

from typing import Final

#: message key → (zh-CN, en)
MESSAGES: Final[dict[str, tuple[str, str]]] = {
    "insufficient_funds": (
        "卡内余额不足。请换一张卡，或联系发卡银行。",
        "Your card has insufficient funds. Try another card or contact your bank.",
    ),
    "expired_card": (
        "该卡已过有效期。请换一张卡。",
        "Your card has expired. Try another card.",
    ),
    "incorrect_cvc": (
        "卡片背面的安全码（CVC）不正确。请核对后重试。",
        "The card's security code (CVC) is incorrect. Check it and try again.",
    ),
    "incorrect_number": (
        "卡号不正确。请核对后重试。",
        "The card number is incorrect. Check it and try again.",
    ),
    "lost_or_stolen": (
        "该卡无法使用。请换一张卡，或联系发卡银行。",
        "This card cannot be used. Try another card or contact your bank.",
    ),
    "authentication_failed": (
        "银行身份验证未通过。请重试，或换一张卡。",
        "Your bank could not verify it was you. Try again or use another card.",
    ),
    "processing_error": (
        "处理银行卡时出错。请稍后重试。",
        "An error occurred while processing your card. Try again in a moment.",
    ),
    "card_declined": (
        "银行卡被发卡银行拒绝。请换一张卡，或联系发卡银行。",
        "Your card was declined by your bank. Try another card or contact your bank.",
    ),
    "expired": (
        "已超过缴费期限，未产生扣款。请联系办理部门重新发起缴费。",
        "The time to pay ran out and nothing was charged. Ask the department for a new "
        "payment link.",
    ),
    "cancelled_by_department": (
        "办理部门已取消此次缴费，未产生扣款。如有疑问请联系办理部门。",
        "The department cancelled this payment and nothing was charged. Contact the "
        "department with any questions.",
    ),
    "generic": (
        "支付未能完成，未产生扣款。请换一张卡重试，或联系发卡银行。",
        "The payment could not be completed and nothing was charged. Try another card "
        "or contact your bank.",
    ),
}

#: (words any of which names the reason, its message key), most specific first: Stripe's
#: decline codes, its English messages, the sandbox's card labels, our own reasons
_PATTERNS: Final[tuple[tuple[tuple[str, ...], str], ...]] = (
    (
        ("insufficient_funds", "insufficient funds", "withdrawal_count_limit_exceeded"),
        "insufficient_funds",
    ),
    (("expired_card", "card has expired"), "expired_card"),
    (("incorrect_cvc", "invalid_cvc", "security code"), "incorrect_cvc"),
    (("incorrect_number", "invalid_number", "card number is incorrect"), "incorrect_number"),
    (("lost_card", "stolen_card", "lost_or_stolen", "pickup_card"), "lost_or_stolen"),
    (("authentication", "3d secure", "3-d secure"), "authentication_failed"),
    (("processing_error", "error occurred while processing"), "processing_error"),
    (("cancelled by department", "canceled by department"), "cancelled_by_department"),
    (("declined", "decline", "do_not_honor", "card_not_supported"), "card_declined"),
)


def reason_key(reason: str | None) -> str | None:
    """The message key for a recorded reason; None for no reason, "generic" for one
    we do not know."""
    if not reason or not reason.strip():
        return None
    text = reason.strip().lower()
    if text in ("expired", "expire"):
        return "expired"
    for words, key in _PATTERNS:
        if any(word in text for word in words):
            return key
    return "generic"


def reason_message(reason: str | None, lang: str) -> str | None:
    """What the applicant reads about `reason` in `lang` ("zh-CN" or "en"); None when
    there is no reason to show."""
    key = reason_key(reason)
    if key is None:
        return None
    zh, en = MESSAGES[key]
    return en if lang == "en" else zh
