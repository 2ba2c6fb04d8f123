"""What a domain declares about itself, so the wiring can assemble the process from one list.

Each domain package builds one `Domain` in its `__init__.py`; `onetrip/domains.py` (the
wiring) lists them in order, and the app, the worker, the relay, the migrations and the
tests read that list instead of naming domains one by one.

The descriptor names modules rather than importing them: `import payments` stays cheap
(no ORM, no controllers), and a process imports only what it uses (the relay needs the
actors, not the routes). This module is kernel: it imports no domain.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Domain:
    """One domain's contribution to the process.

    `routes`: modules with a `routes` list of Litestar handlers (controllers).
    `jobs`: modules whose import declares Dramatiq actors (and their subscriptions).
    `models`: modules whose import declares SQLAlchemy tables on `onetrip.db.Base`.
    `queues`: the Dramatiq queues its actors use; a worker consumes every domain's queues.
    `templates`: Jinja template folders; the app searches every domain's, in list order.
    """

    name: str
    routes: tuple[str, ...] = ()
    jobs: tuple[str, ...] = ()
    models: tuple[str, ...] = ()
    queues: tuple[str, ...] = ()
    templates: tuple[Path, ...] = ()

    def route_handlers(self) -> list[Any]:
        """The Litestar handlers of every route module, in declaration order."""
        handlers: list[Any] = []
        for name in self.routes:
            handlers.extend(importlib.import_module(name).routes)
        return handlers

    def load_jobs(self) -> None:
        """Import the job modules, so their actors are declared and subscribed."""
        for name in self.jobs:
            importlib.import_module(name)

    def load_models(self) -> None:
        """Import the model modules, so their tables are on the shared metadata."""
        for name in self.models:
            importlib.import_module(name)
