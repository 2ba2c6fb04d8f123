"""The ledger: double-entry journal, accounts and balances (imports no other domain)."""

from onetrip.domain import Domain

domain = Domain(
    name="ledger",
    routes=(
        "ledger.api",
        "ledger.periods_api",
        "ledger.reconciliation.api",
        "ledger.reconciliation.runs_api",
        "ledger.reports.api",
    ),
    jobs=("ledger.jobs",),
    models=("ledger.models",),
    queues=("ledger",),
)
