"""Which fee version prices a payment made at a given moment (payments.catalogue)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from payments.catalogue import FeeVersion, MatterInfo

T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
PSB = (("PSB", 10_000),)


def version(amount: int, effective_from: datetime, created_at: datetime) -> FeeVersion:
    return FeeVersion(
        amount=amount,
        currency="CNY",
        fee_split=PSB,
        effective_from=effective_from,
        created_at=created_at,
    )


def passport(*fees: FeeVersion) -> MatterInfo:
    return MatterInfo(
        code="passport",
        name="普通护照签发",
        department="PSB",
        deliverable=True,
        auto_issue=False,
        required_materials=("居民身份证原件",),
        fees=tuple(sorted(fees, key=lambda f: f.applies_from)),
    )


def test_no_fee_is_in_force_before_the_first_version_applies():
    info = passport(version(12000, T0, T0))
    assert info.fee_at(T0 - timedelta(seconds=1)) is None
    assert info.fee_at(T0).amount == 12000


def test_a_future_version_applies_only_from_its_effective_from():
    info = passport(
        version(12000, T0, T0), version(14000, T0 + timedelta(days=30), T0 + timedelta(days=1))
    )
    assert info.fee_at(T0 + timedelta(days=29)).amount == 12000
    assert info.fee_at(T0 + timedelta(days=30)).amount == 14000


def test_a_version_dated_in_the_past_replaces_the_fee_in_force_from_when_it_was_written():
    written = T0 + timedelta(days=10)
    info = passport(version(12000, T0, T0), version(9000, T0 - timedelta(days=365), written))
    assert info.fee_at(written - timedelta(seconds=1)).amount == 12000  # nothing retroactive
    assert info.fee_at(written).amount == 9000


def test_a_correction_written_later_keeps_a_scheduled_future_version():
    scheduled = version(14000, T0 + timedelta(days=30), T0 + timedelta(days=1))
    correction = version(11000, T0 + timedelta(days=2), T0 + timedelta(days=2))
    info = passport(version(12000, T0, T0), scheduled, correction)
    assert info.fee_at(T0 + timedelta(days=3)).amount == 11000
    assert info.fee_at(T0 + timedelta(days=31)).amount == 14000


def test_applies_from_is_effective_from_when_the_write_time_is_unknown():
    assert version(1, T0, T0).applies_from == T0
    assert FeeVersion(amount=1, currency="CNY", fee_split=PSB, effective_from=T0).applies_from == T0
