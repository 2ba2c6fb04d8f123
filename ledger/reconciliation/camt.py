"""ISO 20022 camt.053 bank statements (versions 001.02 and 001.08), read with
`lxml.etree.iterparse`: each `Ntry` is handled when it ends and then freed, so memory
stays flat however long the statement. A batch-booked entry (several `TxDtls`) becomes
one line per transaction, and their amounts must add up to the entry's.

Entities are not resolved and nothing is fetched from the network (no XXE).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime
from typing import IO, Any

from lxml import etree

from ledger.reconciliation.errors import bad_file, bad_line
from ledger.reconciliation.lines import (
    Line,
    check_currency,
    line_hash,
    parse_currency,
    parse_major,
    text_or_none,
)

CAMT053 = "urn:iso:std:iso:20022:tech:xsd:camt.053.001."
VERSIONS = ("02", "08")
NAMESPACE = "camt053"


def _find(elem: Any, ns: str, path: str) -> Any:
    return elem.find("/".join(f"{{{ns}}}{p}" for p in path.split("/")))


def _text(elem: Any, ns: str, *paths: str) -> str | None:
    for path in paths:
        found = _find(elem, ns, path)
        if found is not None and found.text and found.text.strip():
            return str(found.text).strip()
    return None


def _date(elem: Any, ns: str, what: str, line: int) -> date | None:
    text = _text(elem, ns, f"{what}/Dt", f"{what}/DtTm")
    if text is None:
        return None
    try:
        return datetime.fromisoformat(text).date() if "T" in text else date.fromisoformat(text)
    except ValueError:
        raise bad_line(
            line, f"{what} {text!r} is not an ISO date", code="import_bad_date"
        ) from None


def _amount(elem: Any, ns: str, line: int, expected: str | None) -> tuple[int, str] | None:
    amt = elem if elem.tag == f"{{{ns}}}Amt" else None
    if amt is None:
        return None
    ccy = amt.get("Ccy")
    if not ccy:
        raise bad_line(line, "Amt has no Ccy attribute")
    code = parse_currency(ccy, line, expected)
    return parse_major(amt.text or "", code, line, "Amt"), code


def camt053(binary: IO[bytes], currency: str | None) -> Iterator[Line]:
    events = etree.iterparse(
        binary,
        events=("start", "end"),
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        huge_tree=False,
        remove_comments=True,
    )
    ns = ""
    account = ""
    account_currency: str | None = None
    try:
        for event, elem in events:
            if not ns:
                ns = _check_root(elem)
                continue
            tag = elem.tag
            if event == "end" and tag == f"{{{ns}}}Acct":
                account = _text(elem, ns, "Id/IBAN", "Id/Othr/Id") or ""
                account_currency = _text(elem, ns, "Ccy")
            elif event == "end" and tag == f"{{{ns}}}Ntry":
                expected = currency or account_currency
                if currency and account_currency and currency != account_currency:
                    raise bad_line(
                        elem.sourceline,
                        f"the statement's account is in {account_currency} but the import "
                        f"is for {currency}",
                        code="import_wrong_currency",
                    )
                yield from _entry(elem, ns, account, expected)
                elem.clear()
                parent = elem.getparent()
                while elem.getprevious() is not None and parent is not None:
                    del parent[0]
    except etree.XMLSyntaxError as exc:
        line = exc.lineno or 1
        raise bad_line(line, f"not well-formed XML: {exc.msg}", code="import_not_camt053") from None
    if not ns:
        raise bad_file("the file is empty, not a camt.053 statement", code="import_not_camt053")


def _check_root(elem: Any) -> str:
    qname = etree.QName(elem)
    ns = qname.namespace or ""
    if not ns.startswith(CAMT053) or qname.localname != "Document":
        what = ns or qname.localname
        raise bad_file(
            f"not a camt.053 bank statement: the XML is {what!r}",
            code="import_not_camt053",
        )
    version = ns.removeprefix(CAMT053)
    if version not in VERSIONS:
        raise bad_file(
            f"camt.053.001.{version} is not supported (only 001.02 and 001.08)",
            code="import_not_camt053",
        )
    return ns


def _entry(ntry: Any, ns: str, account: str, expected: str | None) -> Iterator[Line]:
    line = ntry.sourceline
    status = _text(ntry, ns, "Sts/Cd", "Sts")
    if status != "BOOK":
        return  # pending or informational entries are not money that moved yet
    amt = _find(ntry, ns, "Amt")
    parsed = _amount(amt, ns, line, expected) if amt is not None else None
    if parsed is None:
        raise bad_line(line, "Ntry has no Amt")
    magnitude, code = parsed
    indicator = _text(ntry, ns, "CdtDbtInd")
    if indicator not in ("CRDT", "DBIT"):
        raise bad_line(line, f"CdtDbtInd {indicator!r} is not CRDT or DBIT")
    sign = 1 if indicator == "CRDT" else -1
    booked = _date(ntry, ns, "BookgDt", line)
    if booked is None:
        raise bad_line(line, "Ntry has no BookgDt")
    value = _date(ntry, ns, "ValDt", line)
    entry_ref = _text(ntry, ns, "AcctSvcrRef", "NtryRef")
    details = ntry.findall(f"{{{ns}}}NtryDtls/{{{ns}}}TxDtls")
    if not details:
        details = [None]
    batch = len(details) > 1
    lines: list[Line] = []
    for position, tx in enumerate(details, start=1):
        tx_line = tx.sourceline if tx is not None else line
        tx_sign = sign
        amount = sign * magnitude
        if tx is not None:
            tx_indicator = _text(tx, ns, "CdtDbtInd")
            if tx_indicator is not None:
                if tx_indicator not in ("CRDT", "DBIT"):
                    raise bad_line(tx_line, f"CdtDbtInd {tx_indicator!r} is not CRDT or DBIT")
                tx_sign = 1 if tx_indicator == "CRDT" else -1
            tx_amt = _find(tx, ns, "Amt")
            if tx_amt is None:
                tx_amt = _find(tx, ns, "AmtDtls/TxAmt/Amt")
            if tx_amt is not None:
                tx_amount, tx_code = _amount(tx_amt, ns, tx_line, expected) or (0, code)
                check_currency(tx_code, tx_line, code)
                amount = tx_sign * tx_amount
            elif batch:
                raise bad_line(tx_line, "a transaction of a batch entry has no amount")
        lines.append(
            _line(
                tx,
                ns,
                account,
                entry_ref,
                position,
                batch,
                tx_line,
                booked,
                value,
                amount,
                code,
                ntry,
            )
        )
    if batch and sum(x.amount for x in lines) != sign * magnitude:
        raise bad_line(
            line,
            "the batch entry's transactions do not add up to its amount",
            code="import_bad_amount",
        )
    yield from lines


def _line(
    tx: Any,
    ns: str,
    account: str,
    entry_ref: str | None,
    position: int,
    batch: bool,
    line: int,
    booked: date,
    value: date | None,
    amount: int,
    code: str,
    ntry: Any,
) -> Line:
    if tx is not None:
        tx_ref = _text(tx, ns, "Refs/AcctSvcrRef")
        end_to_end = _text(tx, ns, "Refs/EndToEndId")
        if amount > 0:
            party = _text(tx, ns, "RltdPties/Dbtr/Pty/Nm", "RltdPties/Dbtr/Nm")
        else:
            party = _text(tx, ns, "RltdPties/Cdtr/Pty/Nm", "RltdPties/Cdtr/Nm")
        reference = _text(tx, ns, "RmtInf/Ustrd", "RmtInf/Strd/CdtrRefInf/Ref")
    else:
        tx_ref = end_to_end = party = reference = None
    reference = reference or _text(ntry, ns, "AddtlNtryInf")
    if end_to_end and end_to_end.upper() == "NOTPROVIDED":
        end_to_end = None
    if tx_ref:
        own = tx_ref
    elif entry_ref:
        own = f"{entry_ref}#{position}" if batch else entry_ref
    else:
        own = end_to_end or line_hash(booked, value, amount, code, party, reference, position)
    external_id = f"{account}:{own}" if account else own
    if len(external_id) > 255:
        raise bad_line(line, "the entry reference is longer than 255 characters")
    raw = {
        "account": account,
        "entry_ref": entry_ref,
        "tx_ref": tx_ref,
        "batch": batch,
        "xml": etree.tostring(tx if tx is not None else ntry, encoding="unicode")[:4000],
    }
    return Line(
        line_no=line,
        external_id=external_id,
        booked_on=booked,
        value_on=value,
        amount=amount,
        currency=code,
        counterparty=text_or_none(party, 300),
        reference=text_or_none(reference, 500),
        end_to_end_id=text_or_none(end_to_end, 100),
        raw=raw,
    )
