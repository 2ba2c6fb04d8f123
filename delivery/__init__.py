"""Delivery: courier partners, and the applicant's tracking page (licences and dispatches
come with the delivery issue)."""

from pathlib import Path

from onetrip.domain import Domain

domain = Domain(
    name="delivery",
    routes=("delivery.api", "delivery.api.satisfaction", "delivery.pages"),
    jobs=("delivery.jobs",),
    models=("delivery.models",),
    queues=("delivery", "delivery_drawing"),  # drawing: delivery.jobs.DRAWING_QUEUE
    templates=(Path(__file__).resolve().parent / "templates",),
)
