"""HTTP edges of the payments domain: catalogue, payments, refunds, Stripe webhooks.

Controllers parse, authorise, call one service function and shape the response.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Annotated, Any, Literal

from litestar import Controller, Request, Response, get, post
from litestar.di import Provide
from litestar.params import QueryParameter
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED

from onetrip import metrics
from onetrip.auth import Principal, admin_key, any_key, department_key, require_role
from onetrip.clock import require_offset
from onetrip.db import get_database, unit_of_work
from onetrip.idempotency import IdempotencyKey, fingerprint, idempotent_response
from onetrip.jsonbody import WEBHOOK_BODY_LIMIT
from onetrip.openapi import documented
from payments import catalogue, schemas, service
from payments.gateways import stripe as stripe_gateway
from payments.pages import PagesController
from payments.schemas import (
    CounterCollectionIn,
    DepartmentIn,
    DepartmentPage,
    MatterIn,
    MatterPage,
    PaymentIn,
    PaymentPage,
    RefundIn,
    RefundPage,
    StripeEventReceived,
    TimelinePage,
)
from payments.views import DepartmentView, MatterView, PaymentView, RefundView, department_view

log = logging.getLogger(__name__)

PaymentStatus = Literal[
    "created", "started", "succeeded", "failed", "cancelled", "expired", "needs_review"
]

#: what every call about one payment can meet
ONE_PAYMENT = {403: ["wrong_role"], 404: ["payment_not_found"]}
#: changing it: a department with only a share of its fee may read it, not change it
CHANGE_PAYMENT = {403: ["wrong_role", "not_payment_owner"], 404: ["payment_not_found"]}
#: a payment's own gateway asked to act (Stripe; the sandbox never fails so)
GATEWAY = {502: ["stripe_error", "gateway_not_configured"]}


async def _idempotent(
    request: Request[Any, Any, Any],
    principal: Principal,
    key: str | None,
    operation: Any,
    status_code: int,
) -> Response[PaymentView]:
    return await idempotent_response(request, principal.key_id, key, operation, status_code)


class AdminCatalogueController(Controller):
    path = "/api/v1/admin"
    tags = ["admin"]
    dependencies = {"principal": Provide(admin_key)}

    @post(
        "/departments",
        summary="Create a department",
        status_code=HTTP_201_CREATED,
        opt=documented(
            errors={409: ["department_exists"], 422: ["invalid_timezone"]},
            request_example=schemas.DEPARTMENT_IN_EXAMPLE,
            response_example=schemas.DEPARTMENT_EXAMPLE,
        ),
    )
    async def create_department(self, principal: Principal, data: DepartmentIn) -> DepartmentView:
        async with unit_of_work() as session:
            department = await catalogue.create_department(session, data)
        return department_view(department)

    @post(
        "/matters",
        summary="Create a matter, or add a fee version (effective from effective_from)",
        status_code=HTTP_201_CREATED,
        opt=documented(
            errors={
                409: ["matter_department_mismatch"],
                422: ["unknown_department", "invalid_fee_split"],
            },
            request_example=schemas.MATTER_IN_EXAMPLE,
            response_example=schemas.MATTER_EXAMPLE,
        ),
    )
    async def define_matter(self, principal: Principal, data: MatterIn) -> MatterView:
        async with unit_of_work() as session:
            info = await catalogue.define_matter(session, data)
        return catalogue.matter_view(info)


class CatalogueController(Controller):
    path = "/api/v1"
    tags = ["catalogue"]
    dependencies = {"principal": Provide(any_key)}

    @get("/departments", summary="Departments")
    async def departments(self, principal: Principal) -> DepartmentPage:
        async with get_database().session() as session:
            rows = await catalogue.list_departments(session)
        return DepartmentPage(data=[department_view(d) for d in rows], next_cursor=None)

    @get("/matters", summary="Matters and their fees in force")
    async def matters(self, principal: Principal, department: str | None = None) -> MatterPage:
        async with get_database().session() as session:
            infos = await catalogue.list_matters(session, department)
        return MatterPage(data=[catalogue.matter_view(i) for i in infos], next_cursor=None)

    @get(
        "/matters/{code:str}",
        summary="One matter, its fee in force and required materials",
        opt=documented(errors={404: ["matter_not_found"]}, response_example=schemas.MATTER_EXAMPLE),
    )
    async def matter(self, principal: Principal, code: str) -> MatterView:
        return catalogue.matter_view(await catalogue.get_matter(code))


class PaymentsController(Controller):
    path = "/api/v1/payments"
    tags = ["payments"]

    @post(
        "/",
        summary="Create a payment",
        dependencies={"principal": Provide(department_key)},
        opt=documented(
            errors={
                409: ["duplicate_reference"],
                422: ["unknown_matter", "no_fee_in_force", "not_deliverable", "address_required"],
            },
            idempotency_key="required",
            request_example=schemas.PAYMENT_IN_EXAMPLE,
            response_example=schemas.PAYMENT_EXAMPLE,
        ),
    )
    async def create(
        self,
        request: Request[Any, Any, Any],
        principal: Principal,
        data: PaymentIn,
        idempotency_key: IdempotencyKey = None,
    ) -> Response[PaymentView]:
        print_ = fingerprint(request.method, request.url.path, await request.body())
        status, body = await service.create_payment_once(principal, data, idempotency_key, print_)
        return Response(body, status_code=status)

    @get(
        "/",
        summary="List payments",
        dependencies={"principal": Provide(any_key)},
        opt=documented(errors={403: ["wrong_role"], 422: ["validation_failed"]}),
    )
    async def list_payments(
        self,
        principal: Principal,
        status: PaymentStatus | None = None,
        reference: str | None = None,
        created_from: Annotated[datetime | None, QueryParameter(name="from")] = None,
        created_to: Annotated[datetime | None, QueryParameter(name="to")] = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> PaymentPage:
        _reader(principal)
        require_offset(from_=created_from, to=created_to)
        async with get_database().session() as session:
            page = await service.list_payments(
                session,
                principal,
                status=status,
                reference=reference,
                created_from=created_from,
                created_to=created_to,
                limit=limit,
                cursor=cursor,
            )
        return PaymentPage(data=page["data"], next_cursor=page["next_cursor"])

    @get(
        "/{payment_id:str}",
        summary="One payment",
        dependencies={"principal": Provide(any_key)},
        opt=documented(errors=ONE_PAYMENT, response_example=schemas.PAYMENT_EXAMPLE),
    )
    async def retrieve(self, principal: Principal, payment_id: str) -> PaymentView:
        _reader(principal)
        async with get_database().session() as session:
            payment = await service.get_readable_payment(session, principal, payment_id)
            return service.payment_view(payment, principal)

    @post(
        "/{payment_id:str}/cancel",
        summary="Cancel a payment that has not succeeded",
        status_code=HTTP_200_OK,
        dependencies={"principal": Provide(department_key)},
        opt=documented(
            errors={
                **CHANGE_PAYMENT,
                409: [
                    "payment_already_succeeded",
                    "payment_needs_review",
                    "invalid_state_transition",
                ],
                **GATEWAY,
            },
            idempotency_key="optional",  # cancelling is idempotent by state
        ),
    )
    async def cancel(
        self,
        request: Request[Any, Any, Any],
        principal: Principal,
        payment_id: str,
        idempotency_key: IdempotencyKey = None,
    ) -> Response[PaymentView]:
        print_ = fingerprint(request.method, request.url.path, await request.body())
        status, body = await service.cancel_once(principal, payment_id, idempotency_key, print_)
        return Response(body, status_code=status)

    @post(
        "/{payment_id:str}/accept",
        summary="Accept the money a payment in review received as its payment (admin)",
        status_code=HTTP_200_OK,
        dependencies={"principal": Provide(admin_key)},
        opt=documented(
            errors={
                **ONE_PAYMENT,
                409: [
                    "payment_not_in_review",
                    "payment_currency_mismatch",
                    "payment_nothing_to_accept",
                    "invalid_state_transition",
                ],
            },
            idempotency_key="required",
        ),
    )
    async def accept(
        self,
        request: Request[Any, Any, Any],
        principal: Principal,
        payment_id: str,
        idempotency_key: IdempotencyKey = None,
    ) -> Response[PaymentView]:
        print_ = fingerprint(request.method, request.url.path, await request.body())
        status, body = await service.accept_once(principal, payment_id, idempotency_key, print_)
        return Response(body, status_code=status)

    @post(
        "/{payment_id:str}/counter",
        summary="Record the fee as taken at a service window (cash or POS)",
        status_code=HTTP_200_OK,
        dependencies={"principal": Provide(department_key)},
        opt=documented(
            errors={
                **CHANGE_PAYMENT,
                409: [
                    "payment_not_collectable",
                    "payment_needs_review",
                    "invalid_state_transition",
                ],
            },
            idempotency_key="required",
            request_example=schemas.COUNTER_IN_EXAMPLE,
        ),
    )
    async def counter(
        self,
        request: Request[Any, Any, Any],
        principal: Principal,
        payment_id: str,
        data: CounterCollectionIn,
        idempotency_key: IdempotencyKey = None,
    ) -> Response[PaymentView]:
        return await _idempotent(
            request,
            principal,
            idempotency_key,
            lambda session: service.collect_at_counter(session, principal, payment_id, data),
            HTTP_200_OK,
        )

    @post(
        "/{payment_id:str}/refunds",
        summary="Refund all or part of a succeeded payment",
        dependencies={"principal": Provide(department_key)},
        opt=documented(
            errors={
                **CHANGE_PAYMENT,
                409: ["payment_not_refundable", "refund_exceeds_available"],
                **GATEWAY,
            },
            idempotency_key="required",
            request_example=schemas.REFUND_IN_EXAMPLE,
            response_example=schemas.REFUND_EXAMPLE,
        ),
    )
    async def refund(
        self,
        request: Request[Any, Any, Any],
        principal: Principal,
        payment_id: str,
        data: RefundIn,
        idempotency_key: IdempotencyKey = None,
    ) -> Response[RefundView]:
        print_ = fingerprint(request.method, request.url.path, await request.body())
        status, body = await service.refund_once(
            principal, payment_id, data, idempotency_key, print_
        )
        return Response(body, status_code=status)

    @get(
        "/{payment_id:str}/refunds",
        summary="Refunds of a payment",
        dependencies={"principal": Provide(any_key)},
        opt=documented(errors=ONE_PAYMENT),
    )
    async def refunds(self, principal: Principal, payment_id: str) -> RefundPage:
        _reader(principal)
        async with get_database().session() as session:
            refunds = await service.list_refunds(session, principal, payment_id)
        return RefundPage(data=refunds, next_cursor=None)

    @get(
        "/{payment_id:str}/events",
        summary="Everything that happened to the payment, oldest first",
        dependencies={"principal": Provide(any_key)},
        opt=documented(errors=ONE_PAYMENT),
    )
    async def events(self, principal: Principal, payment_id: str) -> TimelinePage:
        _reader(principal)
        async with get_database().session() as session:
            entries = await service.timeline(session, principal, payment_id)
        return TimelinePage(data=entries, next_cursor=None)

    @get(
        "/{payment_id:str}/receipt.pdf",
        summary="The receipt of a succeeded payment",
        media_type="application/pdf",
        dependencies={"principal": Provide(any_key)},
        opt=documented(
            errors={**ONE_PAYMENT, 409: ["payment_not_succeeded"]},
            response_content={"application/pdf": {"type": "string", "format": "binary"}},
        ),
    )
    async def receipt(self, principal: Principal, payment_id: str) -> Response[bytes]:
        _reader(principal)
        pdf = await service.receipt_pdf(principal, payment_id)
        return Response(
            pdf,
            media_type="application/pdf",
            headers={"Content-Disposition": f'inline; filename="receipt-{payment_id}.pdf"'},
        )


def _reader(principal: Principal) -> None:
    require_role(principal, "department", "finance", "admin")


class StripeWebhookController(Controller):
    path = "/webhooks"
    tags = ["webhooks"]

    @post(
        "/stripe",
        summary="Stripe events, verified by Stripe-Signature",
        status_code=HTTP_200_OK,
        security=[],
        request_max_body_size=WEBHOOK_BODY_LIMIT,  # whole Stripe objects: above the API's
        opt=documented(
            errors={
                400: ["invalid_signature", "malformed_json", "malformed_event"],
                404: ["stripe_not_configured"],
            },
            required_headers={"Stripe-Signature": "Stripe's signature of the event (its secret)"},
        ),
    )
    async def stripe_event(self, request: Request[Any, Any, Any]) -> StripeEventReceived:
        event = stripe_gateway.verified_event(
            await request.body(), request.headers.get("stripe-signature")
        )
        outcome = await service.handle_stripe_event(event)
        metrics.webhooks_received.labels(outcome).inc()
        return StripeEventReceived(received=event.id, outcome=outcome)


routes = [
    AdminCatalogueController,
    CatalogueController,
    PaymentsController,
    StripeWebhookController,
    PagesController,
]
