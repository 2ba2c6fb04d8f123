"""Notifications: what applicants and departments are told, exactly once.

Applicants by email and SMS (`channels/`), from templates per event and language
(`messages`), triggered by the outbox events of payments, refunds and delivery
(`triggers`); departments' own systems by signed webhooks to the endpoints they
register (`endpoints/`, on the kernel's Standard Webhooks sender).
"""

from onetrip.domain import Domain

domain = Domain(
    name="notifications",
    routes=("notifications.api", "notifications.endpoints.api"),
    jobs=("notifications.jobs", "notifications.endpoints.jobs"),
    models=("notifications.models", "notifications.endpoints.models"),
    queues=("notifications",),
)
