"""The Litestar application, assembled from every domain's controllers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from litestar import Litestar, Request
from litestar.config.cors import CORSConfig
from litestar.di import Provide
from litestar.openapi.config import OpenAPIConfig
from litestar.openapi.spec import Components, SecurityScheme
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.plugins.prometheus import PrometheusConfig, PrometheusController
from litestar.template.config import TemplateConfig

from onetrip import domains
from onetrip.broker import configure_broker
from onetrip.db import Database, get_database, set_database
from onetrip.health import HealthController
from onetrip.jsonbody import API_BODY_LIMIT, CheckedJSONRequest
from onetrip.logs import configure_logging
from onetrip.openapi import SECURITY_SCHEME, assets_router, documented, render_plugins
from onetrip.problems import exception_handlers
from onetrip.ratelimit import PageRateLimit
from onetrip.settings import Settings, get_settings


class MetricsController(PrometheusController):
    path = "/metrics"
    include_in_schema = True
    tags = ["operations"]
    opt = documented(response_content={"text/plain": {"type": "string"}}, uses_database=False)


def route_handlers() -> list[Any]:
    """The app's own handlers, then every domain's (from the one list of domains)."""
    return [HealthController, MetricsController, assets_router(), *domains.route_handlers()]


def openapi_config() -> OpenAPIConfig:
    """The document at /schema/openapi.json (completed by onetrip.openapi) and its UI,
    served from the service's own files: /schema works with no internet."""
    return OpenAPIConfig(
        title="OneTrip",
        version="1.0.0",
        description="One payment API for every government matter, with licence delivery.",
        path="/schema",
        render_plugins=render_plugins(),
        components=Components(
            security_schemes={
                SECURITY_SCHEME: SecurityScheme(
                    type="http", scheme="bearer", description="OneTrip API key"
                )
            }
        ),
        security=[{SECURITY_SCHEME: []}],
    )


class AuthenticateFirst:
    """A `before_request` hook that checks the API key before the body is read.

    Litestar reads and decodes a handler's `data` before it resolves dependencies, so a
    request without a key but with a malformed (or hostile) body would be answered
    about its body. This runs the handler's own `principal` dependency first; the
    handler's call of it then finds the principal remembered on the request
    (onetrip.auth.authenticate). A guard would do too, but Litestar copies the handler
    for every guard call (~30 µs a request)."""

    def __init__(self) -> None:
        self._providers: dict[int, Provide] | None = None

    @staticmethod
    def _principal_providers(app: Litestar) -> dict[int, Provide]:
        # by identity: the app holds its handlers for as long as it lives
        providers: dict[int, Provide] = {}
        for route in app.routes:
            for handler in getattr(route, "route_handlers", ()):
                provider = handler.resolve_dependencies().get("principal")
                if provider is not None:
                    providers[id(handler)] = provider
        return providers

    async def __call__(self, request: Request[Any, Any, Any]) -> None:
        if self._providers is None:
            self._providers = self._principal_providers(request.app)
        provider = self._providers.get(id(request.route_handler))
        if provider is not None:
            await provider(request=request)


def create_app(
    settings: Settings | None = None, *, embedded_worker: bool | None = None
) -> Litestar:
    """Build the app. With no BROKER_URL the relay and a worker run inside it."""
    if settings is not None:
        set_database(Database(settings.database_url))
    settings = settings or get_settings()
    configure_logging()
    broker = configure_broker(settings.broker_url)
    from onetrip.runtime import EmbeddedRuntime

    domains.load_job_modules(broker)
    run_embedded = settings.embedded_broker if embedded_worker is None else embedded_worker

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        runtime = EmbeddedRuntime() if run_embedded else None
        if runtime is not None:
            await runtime.start()
        app.state.runtime = runtime
        try:
            yield
        finally:
            if runtime is not None:
                await runtime.stop()
            await get_database().dispose()

    prometheus = PrometheusConfig(app_name="onetrip", group_path=True, exclude=["/metrics"])
    app = Litestar(
        route_handlers=route_handlers(),
        exception_handlers=exception_handlers,
        lifespan=[lifespan],
        middleware=[prometheus.middleware, PageRateLimit()],
        # per-handler limits where more is needed (the Stripe webhook)
        request_max_body_size=API_BODY_LIMIT,
        request_class=CheckedJSONRequest,
        before_request=AuthenticateFirst(),
        cors_config=CORSConfig(allow_origins=[], allow_methods=["GET"]),
        template_config=TemplateConfig(
            directory=domains.template_dirs(), engine=JinjaTemplateEngine
        ),
        openapi_config=openapi_config(),
        debug=False,
        logging_config=None,  # onetrip.logs configures logging for every process
    )
    app.state.settings = settings
    app.state.broker = broker
    return app
