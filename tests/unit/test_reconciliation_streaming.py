"""Importers read lazily: the memory a parse needs does not grow with the file.

The files are generated while they are read (never whole in memory), parsed through to
the end, and tracemalloc's peak compared between a short and a ten times longer file
(Python's allocations), or the process's resident memory watched while a long camt.053
file is parsed (libxml2 allocates outside tracemalloc's sight).
"""

from __future__ import annotations

import io
import os
import tracemalloc
from collections.abc import Callable, Iterator
from datetime import date, timedelta
from typing import Any

from ledger.reconciliation import camt, csvfiles
from tests.integration import test_reconciliation_support as fx


class Generated(io.RawIOBase):
    """A read-only file whose bytes come from a generator, chunk by chunk."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self.chunks = chunks
        self.pending = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self.pending:
            try:
                self.pending = next(self.chunks)
            except StopIteration:
                return 0
        size = min(len(buffer), len(self.pending))
        buffer[:size] = self.pending[:size]
        self.pending = self.pending[size:]
        return size


def csv_chunks(count: int) -> Iterator[bytes]:
    yield b"date,amount,currency,counterparty,memo,e2e\n"
    start = date(2026, 11, 1)
    for n in range(count):
        day = start + timedelta(days=n % 30)
        amount = f"{1260 + n % 1000}.{n % 100:02d}"
        yield f"{day},{amount},CNY,杭州市公安局,机动车驾驶证 {n},E{n}\n".encode()


def camt_chunks(count: int) -> Iterator[bytes]:
    whole = fx.camt053("08", [("NTRYX", 100, date(2026, 11, 1), [("TXX", 100, "张三", "E")])])
    head, _, tail = whole.decode().partition("<Ntry>")
    entry, _, rest = ("<Ntry>" + tail).partition("</Ntry>")
    yield head.encode()
    for n in range(count):
        yield (entry.replace("NTRYX", f"NTRY{n}").replace("TXX", f"TX{n}") + "</Ntry>").encode()
    yield rest.encode()


def peak(parse: Callable[[io.BufferedReader], Iterator[Any]], chunks: Iterator[bytes]) -> int:
    tracemalloc.start()
    try:
        lines = 0
        for _ in parse(io.BufferedReader(Generated(chunks))):
            lines += 1
        assert lines > 0
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


PROFILE = csvfiles.Profile(name="boc", bank="BOC", columns=fx.SIGNED_PROFILE["columns"])


def test_a_bank_csv_ten_times_longer_needs_no_more_memory() -> None:
    def parse(binary: io.BufferedReader) -> Iterator[Any]:
        return csvfiles.bank_csv(binary, PROFILE, "CNY")

    small = peak(parse, csv_chunks(3_000))
    large = peak(parse, csv_chunks(30_000))
    assert large < small * 1.5 + 64_000, (small, large)


def resident() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def test_a_long_camt053_statement_is_parsed_in_flat_memory() -> None:
    """40,000 entries (~40 MB of XML, several times that as a tree): resident memory
    grows by a few MB at most while the last entry is read."""
    before = resident()
    grown = 0
    count = 0
    for _ in camt.camt053(io.BufferedReader(Generated(camt_chunks(40_000))), "CNY"):
        count += 1
        if count % 2_000 == 0:
            grown = max(grown, resident() - before)
    assert count == 40_000
    assert grown < 12 * 1024 * 1024, f"grew by {grown / 1e6:.1f} MB"
