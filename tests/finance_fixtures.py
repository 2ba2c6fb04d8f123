"""A realistic month of money for the finance tests (reconciliation, periods, reports).

November 2026, in CNY: the 市公安局 (PSB) takes passport fees (120.00 yuan) and the
自然资源和规划局 (NRB) a joint real-estate transfer fee (500.01 yuan, 60 % NRB / 40 %
住房和城乡建设局 HCB), every day from the 1st to the 27th, paid by card through Stripe.
Two refunds. Stripe pays out twice: P1 on the 16th (the balance transactions of the 1st
to the 14th) and P2 on the 29th (the 15th to the 27th). Then the platform's bank
statement, as a CSV (a profile-driven export) or as camt.053.001.08.

What is real: the departments and matters are created by payments' own catalogue code
(which opens the ledger accounts), the payments are rows of the payments table booked
by payments/booking.py's `book_payment` (so the ledger holds exactly what production
posts). Refunds are booked with the ledger service in book_refund's shape (key
`refund:{id}`, the same lines and metadata) but effective on their November day,
which book_refund (always "now") cannot do.

Use: `month = await build_month(session)` inside a unit of work; then the files
`month.stripe_report()` and `month.bank_statement("csv" | "camt053", problems=...)`,
or `await import_month(session, month, ...)` to import them through the real importer.

The bank statement "with problems" (the default) has, against the two payouts:
- P1's line with an amount one fen short (its reference names P1): `amount_differs`;
- the same line again under another bank serial: `duplicate`;
- no line for P2: `missing_in_bank`.
The clean statement has P1's line exactly (reference naming it) and P2's without the
payout id (found by amount and date): both match.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from ledger import service as ledger
from onetrip.ids import new_id, new_token
from onetrip.money import split_by_bps
from payments import catalogue
from payments.booking import book_payment
from payments.models import Payment, Refund
from payments.schemas import DepartmentIn, FeeShare, MatterIn
from tests.integration.test_reconciliation_support import major

CURRENCY = "CNY"
MONTH_START = date(2026, 11, 1)
MONTH_END = date(2026, 11, 30)
#: payment days: the 1st to the 27th (nothing is in flight at the month's end)
PAYMENT_DAYS = [MONTH_START + timedelta(days=n) for n in range(27)]
P1_ARRIVAL = date(2026, 11, 16)
P2_ARRIVAL = date(2026, 11, 29)
P1_LAST_DAY = date(2026, 11, 14)

DEPARTMENTS = (
    ("PSB", "市公安局", "department"),  # PSB bears Stripe's fees itself
    ("NRB", "自然资源和规划局", "platform"),
    ("HCB", "住房和城乡建设局", "platform"),
)
PASSPORT = {"code": "passport", "name": "普通护照签发", "department": "PSB", "amount": 12000}
TRANSFER = {
    "code": "real-estate-transfer",
    "name": "存量房转移登记（一窗联办）",
    "department": "NRB",
    "amount": 50001,
    "fee_split": [("NRB", 6000), ("HCB", 4000)],
}
APPLICANTS = [
    ("张伟", "13800138000"),
    ("王芳", "13900139000"),
    ("李娜", "13700137000"),
    ("刘洋", "13600136000"),
    ("陈静", "13500135000"),
    ("杨磊", "13300133000"),
]
ADDRESS = {
    "recipient": "张伟",
    "phone": "13800138000",
    "province": "浙江省",
    "city": "杭州市",
    "district": "西湖区",
    "line1": "文三路 100 号 3 幢 201 室",
    "postal_code": "310012",
}

#: the platform's bank (a signed UTF-8 CSV export) and its account
BANK_PROFILE = {
    "name": "ccb-platform",
    "bank": "CCB",
    "columns": {
        "booked_on": "记账日期",
        "value_on": "起息日期",
        "external_id": "交易流水号",
        "amount": "交易金额",
        "counterparty": "对方户名",
        "reference": "摘要",
        "end_to_end_id": "端到端标识",
    },
    "currency": "CNY",
}
BANK_ACCOUNT = "33050161880000000123"
STRIPE_PAYER = "STRIPE PAYMENTS SINGAPORE PTE. LTD."


def stripe_fee(amount: int) -> int:
    """Stripe's fee on a charge: 3.4 % + 1.80 yuan, rounded down to the fen."""
    return amount * 34 // 1000 + 180


@dataclass(frozen=True)
class PaymentFact:
    id: str
    department: str
    matter_code: str
    amount: int
    fee: int
    succeeded_at: datetime
    charge_id: str
    txn_id: str
    payout_id: str


@dataclass(frozen=True)
class RefundFact:
    id: str
    payment_id: str
    department: str
    amount: int
    refunded_at: datetime
    stripe_refund_id: str
    txn_id: str
    payout_id: str


@dataclass(frozen=True)
class PayoutFact:
    id: str
    txn_id: str
    arrival: date
    gross: int
    fees: int
    refunds: int
    net: int


@dataclass
class FinanceMonth:
    payments: list[PaymentFact] = field(default_factory=list)
    refunds: list[RefundFact] = field(default_factory=list)
    payouts: list[PayoutFact] = field(default_factory=list)

    def payout(self, payout_id: str) -> PayoutFact:
        return next(p for p in self.payouts if p.id == payout_id)

    @property
    def p1(self) -> PayoutFact:
        return self.payouts[0]

    @property
    def p2(self) -> PayoutFact:
        return self.payouts[1]

    def collected(self, department: str | None = None) -> int:
        return sum(
            p.amount for p in self.payments if department is None or p.department == department
        )

    # --- Stripe's itemized payout reconciliation report ---------------------------

    def stripe_rows(self) -> list[dict[str, str]]:
        rows: list[dict[str, str]] = []
        for p in self.payments:
            rows.append(
                _stripe_row(
                    p.payout_id,
                    self.payout(p.payout_id).arrival,
                    p.txn_id,
                    p.succeeded_at,
                    p.amount,
                    p.fee,
                    "charge",
                    p.charge_id,
                    p.id,
                    p.department,
                )
            )
        for r in self.refunds:
            rows.append(
                _stripe_row(
                    r.payout_id,
                    self.payout(r.payout_id).arrival,
                    r.txn_id,
                    r.refunded_at,
                    -r.amount,
                    0,
                    "refund",
                    r.stripe_refund_id,
                    r.payment_id,
                    r.department,
                )
            )
        for payout in self.payouts:
            at = datetime(payout.arrival.year, payout.arrival.month, payout.arrival.day, tzinfo=UTC)
            rows.append(
                _stripe_row(
                    payout.id, payout.arrival, payout.txn_id, at, -payout.net, 0, "payout",
                    payout.id, None, None,
                )
            )  # fmt: skip
        return rows

    def stripe_report(self) -> bytes:
        """payout_reconciliation.itemized.5 as Stripe's dashboard exports it (UTF-8)."""
        lines = [",".join(STRIPE_COLUMNS)]
        for row in self.stripe_rows():
            lines.append(",".join(row.get(column, "") for column in STRIPE_COLUMNS))
        return ("\n".join(lines) + "\n").encode()

    # --- the bank statement ---------------------------------------------------------

    def bank_lines(self, *, problems: bool = True) -> list[BankLine]:
        """The statement's lines; with `problems`: P1 one fen short and listed twice, P2
        missing. Without: P1 exact (its reference names it), P2 exact (it does not)."""
        p1, p2 = self.p1, self.p2
        serial = "CCB2026111600001"
        lines = []
        if problems:
            line = BankLine(
                serial, p1.arrival, p1.net - 1, STRIPE_PAYER, f"STRIPE {p1.id}", f"E2E-{p1.id}"
            )
            lines.append(line)
            lines.append(
                BankLine(
                    "CCB2026111600002",
                    p1.arrival,
                    line.amount,
                    line.counterparty,
                    line.reference,
                    line.end_to_end_id,
                )
            )
        else:
            lines.append(
                BankLine(
                    serial, p1.arrival, p1.net, STRIPE_PAYER, f"STRIPE {p1.id}", f"E2E-{p1.id}"
                )
            )
            lines.append(
                BankLine("CCB2026113000001", p2.arrival + timedelta(days=1), p2.net,
                         STRIPE_PAYER, "STRIPE 转账", None)
            )  # fmt: skip
        return lines

    def bank_statement(self, fmt: str = "csv", *, problems: bool = True) -> bytes:
        lines = self.bank_lines(problems=problems)
        return bank_csv(lines) if fmt == "csv" else bank_camt053(lines)


@dataclass(frozen=True)
class BankLine:
    serial: str
    day: date
    amount: int  # fen, + money in
    counterparty: str
    reference: str
    end_to_end_id: str | None


STRIPE_COLUMNS = [
    "automatic_payout_id",
    "automatic_payout_effective_at",
    "balance_transaction_id",
    "created_utc",
    "available_on_utc",
    "currency",
    "gross",
    "fee",
    "net",
    "reporting_category",
    "source_id",
    "description",
    "charge_id",
    "payment_intent_id",
    "payment_metadata[payment_id]",
    "payment_metadata[department]",
]


def _stripe_row(
    payout_id: str,
    arrival: date,
    txn_id: str,
    created: datetime,
    gross: int,
    fee: int,
    category: str,
    source_id: str,
    payment_id: str | None,
    department: str | None,
) -> dict[str, str]:
    return {
        "automatic_payout_id": payout_id,
        "automatic_payout_effective_at": f"{arrival.isoformat()} 00:00:00",
        "balance_transaction_id": txn_id,
        "created_utc": created.strftime("%Y-%m-%d %H:%M:%S"),
        "available_on_utc": (created + timedelta(days=2)).strftime("%Y-%m-%d 00:00:00"),
        "currency": "cny",
        "gross": major(gross, ""),
        "fee": major(fee, ""),
        "net": major(gross - fee, ""),
        "reporting_category": category,
        "source_id": source_id,
        "description": {"charge": "政务缴费", "refund": "退款", "payout": "STRIPE PAYOUT"}[
            category
        ],
        "charge_id": source_id if category == "charge" else "",
        "payment_intent_id": f"pi_{source_id[3:]}" if category == "charge" else "",
        "payment_metadata[payment_id]": payment_id or "",
        "payment_metadata[department]": department or "",
    }


def bank_csv(lines: list[BankLine]) -> bytes:
    header = "记账日期,起息日期,交易流水号,交易金额,币种,对方户名,摘要,端到端标识"
    out = [header]
    for x in lines:
        out.append(
            f"{x.day.isoformat()},{x.day.isoformat()},{x.serial},{major(x.amount, '')},CNY,"
            f"{x.counterparty},{x.reference},{x.end_to_end_id or ''}"
        )
    return ("\n".join(out) + "\n").encode()


def bank_camt053(lines: list[BankLine]) -> bytes:
    entries = []
    for x in lines:
        indicator = "CRDT" if x.amount > 0 else "DBIT"
        amount = major(abs(x.amount), "")
        e2e = f"<EndToEndId>{x.end_to_end_id}</EndToEndId>" if x.end_to_end_id else ""
        entries.append(
            f"""
      <Ntry>
        <NtryRef>{x.serial}</NtryRef>
        <Amt Ccy="CNY">{amount}</Amt>
        <CdtDbtInd>{indicator}</CdtDbtInd>
        <Sts><Cd>BOOK</Cd></Sts>
        <BookgDt><Dt>{x.day.isoformat()}</Dt></BookgDt>
        <ValDt><Dt>{x.day.isoformat()}</Dt></ValDt>
        <AcctSvcrRef>{x.serial}</AcctSvcrRef>
        <BkTxCd/>
        <NtryDtls>
          <TxDtls>
            <Refs><AcctSvcrRef>{x.serial}</AcctSvcrRef>{e2e}</Refs>
            <Amt Ccy="CNY">{amount}</Amt>
            <CdtDbtInd>{indicator}</CdtDbtInd>
            <RltdPties><Dbtr><Pty><Nm>{x.counterparty}</Nm></Pty></Dbtr></RltdPties>
            <RmtInf><Ustrd>{x.reference}</Ustrd></RmtInf>
          </TxDtls>
        </NtryDtls>
      </Ntry>"""
        )
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.08">
  <BkToCstmrStmt>
    <GrpHdr><MsgId>CCB-STMT-2026-11</MsgId><CreDtTm>2026-12-01T01:00:00+08:00</CreDtTm></GrpHdr>
    <Stmt>
      <Id>CCB-STMT-2026-11-001</Id>
      <CreDtTm>2026-12-01T01:00:00+08:00</CreDtTm>
      <Acct><Id><Othr><Id>{BANK_ACCOUNT}</Id></Othr></Id><Ccy>CNY</Ccy></Acct>{"".join(entries)}
    </Stmt>
  </BkToCstmrStmt>
</Document>
""".encode()


# --- building the month in the database -----------------------------------------------


async def seed_departments(session: AsyncSession) -> None:
    """PSB, NRB and HCB with the passport and the joint transfer, through payments'
    catalogue code (which opens the departments' ledger accounts)."""
    for code, name, borne_by in DEPARTMENTS:
        await catalogue.create_department(
            session, DepartmentIn(code=code, name=name, stripe_fees_borne_by=borne_by)
        )
    for matter in (PASSPORT, TRANSFER):
        split = matter.get("fee_split")
        await catalogue.define_matter(
            session,
            MatterIn(
                code=str(matter["code"]),
                name=str(matter["name"]),
                department=str(matter["department"]),
                amount=int(matter["amount"]),  # type: ignore[call-overload]
                deliverable=True,
                auto_issue=False,
                fee_split=[FeeShare(d, bps) for d, bps in split] if split else None,  # type: ignore[union-attr]
                effective_from=datetime(2026, 1, 1, tzinfo=UTC),
            ),
        )


def _payment(n: int, matter: dict[str, Any], at: datetime) -> Payment:
    name, phone = APPLICANTS[n % len(APPLICANTS)]
    split = matter.get("fee_split") or [(matter["department"], 10_000)]
    prefix = "CRJ" if matter is PASSPORT else "BDC"
    return Payment(
        id=new_id("pay"),
        token=new_token(),
        department=matter["department"],
        matter_code=matter["code"],
        matter_name=matter["name"],
        reference=f"{prefix}-2026-{n:06d}",
        quantity=1,
        unit_amount=matter["amount"],
        amount=matter["amount"],
        currency=CURRENCY,
        fee_split=[{"department": d, "share_bps": bps} for d, bps in split],
        status="succeeded",
        refund_status="none",
        amount_refunded=0,
        amount_received=matter["amount"],
        received_currency=CURRENCY,
        applicant={"name": name, "phone": phone, "email": f"applicant{n}@example.cn"},
        delivery={"method": "courier", "address": ADDRESS},
        return_url="https://crj.example.gov.cn/done",
        metadata_={},
        gateway="stripe",
        gateway_ref=f"pi_3Qnov{n:05d}",
        created_at=at - timedelta(minutes=3),
        updated_at=at,
        expires_at=at + timedelta(hours=1),
        succeeded_at=at,
    )


async def _book_refund(session: AsyncSession, payment: Payment, refund: Refund) -> None:
    """book_refund's posting (payments/booking.py), effective when the refund was made."""
    split = [(s["department"], int(s["share_bps"])) for s in payment.fee_split]
    before = dict(split_by_bps(payment.amount_refunded, split))
    after = dict(split_by_bps(payment.amount_refunded + refund.amount, split))
    lines = [ledger.Line(ledger.STRIPE_CLEARING, -refund.amount, refund.currency)]
    for department, _ in split:
        part = after[department] - before[department]
        if part:
            lines.append(
                ledger.Line(ledger.department_fees_account(department), part, refund.currency)
            )
    await ledger.post_transaction(
        session,
        idempotency_key=f"refund:{refund.id}",
        description=f"Refund {refund.id} of {payment.id}",
        lines=lines,
        effective_at=refund.created_at,
        metadata={
            "payment_id": payment.id,
            "refund_id": refund.id,
            "department": payment.department,
            "kind": "refund",
        },
    )


async def build_month(session: AsyncSession, *, seed: bool = True) -> FinanceMonth:
    """The month in the caller's unit of work: departments (unless `seed=False`), 54
    payments (27 passports, 27 transfers), 2 refunds, and the facts of the two payouts
    Stripe made of them (the files are rendered from these facts)."""
    if seed:
        await seed_departments(session)
    month = FinanceMonth()
    p1_id, p2_id = "po_1QnovP1a2b3c4d5e", "po_1QnovP2f6g7h8i9j"
    refunds_plan = {2: 12000, 41: 10000}  # payment index → amount refunded (P1, P2)
    n = 0
    made: list[tuple[Payment, str]] = []
    for day in PAYMENT_DAYS:
        for slot, matter in enumerate((PASSPORT, TRANSFER)):
            # Beijing office hours: 09:xx and 14:xx local, i.e. 01:xx and 06:xx UTC
            at = datetime(day.year, day.month, day.day, 1 + 5 * slot, (7 * n) % 60, tzinfo=UTC)
            payment = _payment(n, matter, at)
            session.add(payment)
            await book_payment(session, payment)
            payout_id = p1_id if day <= P1_LAST_DAY else p2_id
            month.payments.append(
                PaymentFact(
                    id=payment.id,
                    department=payment.department,
                    matter_code=payment.matter_code,
                    amount=payment.amount,
                    fee=stripe_fee(payment.amount),
                    succeeded_at=at,
                    charge_id=f"ch_3Qnov{n:05d}",
                    txn_id=f"txn_3Qnov{n:05d}",
                    payout_id=payout_id,
                )
            )
            made.append((payment, payout_id))
            n += 1
    await session.flush()  # the payments' rows, before their refunds point at them
    for index, amount in refunds_plan.items():
        payment, _ = made[index]
        at = payment.succeeded_at + timedelta(days=2)  # type: ignore[operator]
        refund = Refund(
            id=new_id("ref"),
            payment_id=payment.id,
            department=payment.department,
            amount=amount,
            currency=CURRENCY,
            reason="申请人撤回申请" if amount == payment.amount else "多收部分退还",
            status="succeeded",
            gateway="stripe",
            gateway_ref=f"re_3Qnov{index:05d}",
            created_at=at,
            updated_at=at,
        )
        session.add(refund)
        await session.flush()
        await _book_refund(session, payment, refund)
        payment.amount_refunded += amount
        payment.refund_status = "full" if payment.amount_refunded == payment.amount else "partial"
        month.refunds.append(
            RefundFact(
                id=refund.id,
                payment_id=payment.id,
                department=payment.department,
                amount=amount,
                refunded_at=at,
                stripe_refund_id=f"re_3Qnov{index:05d}",
                txn_id=f"txn_3QnovR{index:04d}",
                payout_id=p1_id if at.date() <= P1_LAST_DAY else p2_id,
            )
        )
    await session.flush()
    for payout_id, arrival, txn in (
        (p1_id, P1_ARRIVAL, "txn_3QnovPO1"),
        (p2_id, P2_ARRIVAL, "txn_3QnovPO2"),
    ):
        gross = sum(p.amount for p in month.payments if p.payout_id == payout_id)
        fees = sum(p.fee for p in month.payments if p.payout_id == payout_id)
        refunds = sum(r.amount for r in month.refunds if r.payout_id == payout_id)
        month.payouts.append(
            PayoutFact(payout_id, txn, arrival, gross, fees, refunds, gross - fees - refunds)
        )
    return month


async def import_month(
    session: AsyncSession,
    month: FinanceMonth,
    *,
    bank_format: str = "csv",
    problems: bool = True,
    imported_by: str = "cli:finance-fixture",
) -> list[Any]:
    """Import Stripe's report and the bank statement through the real importer (the
    CSV's mapping profile is saved first); returns the import summaries."""
    import io

    from ledger.reconciliation import imports, profiles
    from ledger.reconciliation.csvfiles import Profile

    summaries = [
        await imports.import_file(
            session,
            source="stripe_payout_recon",
            file=io.BytesIO(month.stripe_report()),
            file_name="payout_reconciliation_itemized_2026-11.csv",
            imported_by=imported_by,
        )
    ]
    statement = month.bank_statement(bank_format, problems=problems)
    if bank_format == "csv":
        try:
            await profiles.get_profile(session, BANK_PROFILE["name"])  # type: ignore[arg-type]
        except Exception:
            await profiles.create_profile(session, Profile(**BANK_PROFILE), imported_by)  # type: ignore[arg-type]
        summaries.append(
            await imports.import_file(
                session,
                source="bank_csv",
                file=io.BytesIO(statement),
                file_name="建设银行对账单-2026-11.csv",
                imported_by=imported_by,
                profile=BANK_PROFILE["name"],  # type: ignore[arg-type]
            )
        )
    else:
        summaries.append(
            await imports.import_file(
                session,
                source="camt053",
                file=io.BytesIO(statement),
                file_name="CCB-camt053-2026-11.xml",
                imported_by=imported_by,
            )
        )
    return summaries
