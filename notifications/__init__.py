"""Notifications: what the applicant and the department are told (built in a later issue)."""

from onetrip.domain import Domain

domain = Domain(
    name="notifications",
    routes=("notifications.api",),
    jobs=("notifications.jobs",),
    models=("notifications.models",),
    queues=("notifications",),
)
