"""The ledger: double-entry journal, accounts and balances (imports no other domain)."""

from onetrip.domain import Domain

domain = Domain(
    name="ledger",
    routes=("ledger.api", "ledger.reconciliation.api"),
    jobs=("ledger.jobs",),
    models=("ledger.models",),
    queues=("ledger",),
)
