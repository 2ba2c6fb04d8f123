"""Realistic statement files for the reconciliation import tests, written by the tests:
a month (November 2026) of CNY lines from Chinese counterparties, as a GBK bank CSV
with debit/credit columns, a UTF-8 one with one signed amount column, Stripe's itemized
payout reconciliation report, and camt.053.001.02 / .08 with a batch-booked entry."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

PARTIES = ["杭州市公安局", "张三", "李四", "浙江省自然资源厅", "杭州市西湖区市场监督管理局", "王五"]
MONTH = [date(2026, 11, 1) + timedelta(days=n) for n in range(30)]


@dataclass(frozen=True)
class BankLine:
    ref: str
    day: date
    fen: int  # + money in, − money out
    party: str
    memo: str


def month_of_lines() -> list[BankLine]:
    """Two lines a day: a collection and, every third day, a fee or transfer out."""
    lines = []
    for n, day in enumerate(MONTH):
        lines.append(
            BankLine(
                f"HZ{day:%Y%m%d}{n:04d}",
                day,
                1_260_000 + n * 137,
                PARTIES[n % 6],
                f"机动车驾驶证 缴费 {n}",
            )
        )
        if n % 3 == 0:
            lines.append(
                BankLine(
                    f"HZ{day:%Y%m%d}{n + 5000:04d}", day, -(2_050 + n), "中国工商银行", "手续费"
                )
            )
    return lines


def major(fen: int, thousands: str = ",") -> str:
    """12600.37 CNY as the bank prints it: '12,600.37'."""
    sign = "-" if fen < 0 else ""
    whole, cents = divmod(abs(fen), 100)
    grouped = f"{whole:,}".replace(",", thousands)
    return f"{sign}{grouped}.{cents:02d}"


GBK_PROFILE = {
    "name": "icbc-hangzhou",
    "bank": "ICBC",
    "encoding": "gbk",
    "date_format": "%Y/%m/%d",
    "thousands_separator": ",",
    "sign_convention": "debit_credit",
    "currency": "CNY",
    "skip_rows": 2,
    "columns": {
        "booked_on": "交易日期",
        "value_on": "起息日",
        "external_id": "流水号",
        "counterparty": "对方户名",
        "reference": "摘要",
        "debit": "借方发生额",
        "credit": "贷方发生额",
        "currency": "币种",
    },
}


def gbk_csv(
    lines: list[BankLine], *, extra_rows: list[str] | None = None, currency: str = "人民币"
) -> bytes:
    """An ICBC-style export: two preamble lines, Chinese headers, GBK, debit/credit."""
    out = [
        "中国工商银行 账户明细",
        "账号: 1202020409900012345,户名: 浙江省一网通办平台",
        "交易日期,起息日,流水号,对方户名,摘要,借方发生额,贷方发生额,币种",
    ]
    for x in lines:
        debit = major(-x.fen) if x.fen < 0 else ""
        credit = major(x.fen) if x.fen > 0 else ""
        day = f"{x.day:%Y/%m/%d}"
        out.append(f'{day},{day},{x.ref},{x.party},{x.memo},"{debit}","{credit}",{currency}')
    out.extend(extra_rows or [])
    return ("\r\n".join(out) + "\r\n").encode("gbk")


SIGNED_PROFILE = {
    "name": "boc-signed",
    "bank": "BOC",
    "columns": {
        "booked_on": "date",
        "amount": "amount",
        "counterparty": "counterparty",
        "reference": "memo",
        "end_to_end_id": "e2e",
        "currency": "currency",
    },
}


def signed_csv(rows: list[tuple[str, str, str, str, str, str]]) -> bytes:
    """UTF-8, one signed amount column, no bank reference: ids are hashes of the line."""
    text = "date,amount,currency,counterparty,memo,e2e\n"
    text += "".join(",".join(r) + "\n" for r in rows)
    return text.encode()


STRIPE_HEADER = (
    "automatic_payout_id,automatic_payout_effective_at,balance_transaction_id,created_utc,"
    "created,available_on_utc,available_on,currency,gross,fee,net,reporting_category,"
    "source_id,description,customer_facing_amount,customer_facing_currency,charge_id,"
    "payment_intent_id,payment_metadata[payment_id],payment_metadata[department]"
)


def stripe_report(rows: list[dict[str, str]]) -> bytes:
    lines = [STRIPE_HEADER]
    columns = STRIPE_HEADER.split(",")
    for row in rows:
        lines.append(",".join(row.get(c, "") for c in columns))
    return ("\n".join(lines) + "\n").encode()


def stripe_rows(count: int, payout: str = "po_1QhzNov30") -> list[dict[str, str]]:
    rows = []
    for n in range(count):
        gross = 12_600 + n * 100  # fen
        fee = 76 + n
        rows.append(
            {
                "automatic_payout_id": payout,
                "automatic_payout_effective_at": "2026-11-30 00:00:00",
                "balance_transaction_id": f"txn_3QhzA{n:05d}",
                "created_utc": f"2026-11-{1 + n % 28:02d} 08:15:{n % 60:02d}",
                "available_on_utc": f"2026-11-{2 + n % 28:02d} 00:00:00",
                "currency": "cny",
                "gross": major(gross, ""),
                "fee": major(fee, ""),
                "net": major(gross - fee, ""),
                "reporting_category": "charge",
                "source_id": f"ch_3QhzA{n:05d}",
                "description": "机动车驾驶证",
                "charge_id": f"ch_3QhzA{n:05d}",
                "payment_intent_id": f"pi_3QhzA{n:05d}",
                "payment_metadata[payment_id]": f"pay_01jf3k2m9q8w7e6r5t4y{n:06d}",
                "payment_metadata[department]": "PSB",
            }
        )
    return rows


def _camt_entry_v02(
    ref: str, fen: int, day: date, txs: list[tuple[str, int, str, str]], currency: str = "CNY"
) -> str:
    indicator = "CRDT" if fen > 0 else "DBIT"
    details = "".join(
        f"""
        <TxDtls>
          <Refs><AcctSvcrRef>{tx_ref}</AcctSvcrRef><EndToEndId>{e2e}</EndToEndId></Refs>
          <AmtDtls><TxAmt><Amt Ccy="{currency}">{major(abs(amount), "")}</Amt></TxAmt></AmtDtls>
          <RltdPties><Dbtr><Nm>{party}</Nm></Dbtr></RltdPties>
          <RmtInf><Ustrd>居住证 {e2e}</Ustrd></RmtInf>
        </TxDtls>"""
        for tx_ref, amount, party, e2e in txs
    )
    batch = f"<Btch><NbOfTxs>{len(txs)}</NbOfTxs></Btch>" if len(txs) > 1 else ""
    return f"""
      <Ntry>
        <NtryRef>{ref}</NtryRef>
        <Amt Ccy="{currency}">{major(abs(fen), "")}</Amt>
        <CdtDbtInd>{indicator}</CdtDbtInd>
        <Sts>BOOK</Sts>
        <BookgDt><Dt>{day.isoformat()}</Dt></BookgDt>
        <ValDt><Dt>{day.isoformat()}</Dt></ValDt>
        <AcctSvcrRef>{ref}</AcctSvcrRef>
        <BkTxCd/>
        <NtryDtls>{batch}{details}
        </NtryDtls>
      </Ntry>"""


def _camt_entry_v08(
    ref: str, fen: int, day: date, txs: list[tuple[str, int, str, str]], currency: str = "CNY"
) -> str:
    indicator = "CRDT" if fen > 0 else "DBIT"
    details = "".join(
        f"""
        <TxDtls>
          <Refs><AcctSvcrRef>{tx_ref}</AcctSvcrRef><EndToEndId>{e2e}</EndToEndId></Refs>
          <Amt Ccy="{currency}">{major(abs(amount), "")}</Amt>
          <CdtDbtInd>{"CRDT" if amount > 0 else "DBIT"}</CdtDbtInd>
          <RltdPties><Dbtr><Pty><Nm>{party}</Nm></Pty></Dbtr></RltdPties>
          <RmtInf><Ustrd>营业执照 {e2e}</Ustrd></RmtInf>
        </TxDtls>"""
        for tx_ref, amount, party, e2e in txs
    )
    batch = f"<Btch><NbOfTxs>{len(txs)}</NbOfTxs></Btch>" if len(txs) > 1 else ""
    return f"""
      <Ntry>
        <NtryRef>{ref}</NtryRef>
        <Amt Ccy="{currency}">{major(abs(fen), "")}</Amt>
        <CdtDbtInd>{indicator}</CdtDbtInd>
        <Sts><Cd>BOOK</Cd></Sts>
        <BookgDt><Dt>{day.isoformat()}</Dt></BookgDt>
        <ValDt><Dt>{day.isoformat()}</Dt></ValDt>
        <AcctSvcrRef>{ref}</AcctSvcrRef>
        <BkTxCd/>
        <NtryDtls>{batch}{details}
        </NtryDtls>
      </Ntry>"""


#: one entry per tuple: (entry ref, entry fen, day, [(tx ref, fen, party, end-to-end)])
Entry = tuple[str, int, date, list[tuple[str, int, str, str]]]


def camt_entries() -> list[Entry]:
    """Five single entries and one batch-booked entry of three transactions."""
    entries: list[Entry] = []
    for n in range(5):
        fen = 1_260_000 + n
        entries.append(
            (f"NTRY{n:03d}", fen, MONTH[n], [(f"TX{n:03d}", fen, PARTIES[n], f"E2E-PSB-{n:03d}")])
        )
    batch = [
        ("TXB001", 20_000, "张三", "E2E-NRB-001"),
        ("TXB002", 30_050, "李四", "E2E-NRB-002"),
        ("TXB003", 45_001, "杭州市公安局", "E2E-NRB-003"),
    ]
    entries.append(("NTRYBATCH", sum(t[1] for t in batch), MONTH[6], batch))
    return entries


def camt053(version: str, entries: list[Entry], *, currency: str = "CNY") -> bytes:
    entry = _camt_entry_v02 if version == "02" else _camt_entry_v08
    body = "".join(entry(ref, fen, day, txs, currency) for ref, fen, day, txs in entries)
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.{version}">
  <BkToCstmrStmt>
    <GrpHdr><MsgId>STMT-2026-11</MsgId><CreDtTm>2026-12-01T01:00:00+08:00</CreDtTm></GrpHdr>
    <Stmt>
      <Id>STMT-2026-11-001</Id>
      <CreDtTm>2026-12-01T01:00:00+08:00</CreDtTm>
      <Acct><Id><Othr><Id>1202020409900012345</Id></Othr></Id><Ccy>{currency}</Ccy></Acct>
      <Bal><Tp><CdOrPrtry><Cd>OPBD</Cd></CdOrPrtry></Tp><Amt Ccy="{currency}">0.00</Amt>
        <CdtDbtInd>CRDT</CdtDbtInd><Dt><Dt>2026-11-01</Dt></Dt></Bal>{body}
    </Stmt>
  </BkToCstmrStmt>
</Document>
""".encode()
