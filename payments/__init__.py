"""Payments: the fee catalogue, payments and refunds, their gateways, the hosted pay page."""

from pathlib import Path

from onetrip.domain import Domain

domain = Domain(
    name="payments",
    routes=("payments.api",),
    jobs=("payments.jobs",),
    models=("payments.models",),
    queues=("payments",),
    # base.html here is also the frame of the other domains' applicant pages.
    templates=(Path(__file__).resolve().parent / "templates",),
)
