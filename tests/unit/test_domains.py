"""The one list of domains (onetrip/domains.py) is complete and is what the process reads."""

from __future__ import annotations

import pkgutil
import tomllib
from collections import Counter
from pathlib import Path

import dramatiq
import pytest

import onetrip
from onetrip import domains
from onetrip.broker import configure_broker
from onetrip.db import Base

ROOT = Path(__file__).resolve().parents[2]
WIRING = {"app", "cli", "demo", "runtime", "schema", "domains", "migrations"}


@pytest.fixture
def broker() -> dramatiq.Broker:
    """A fresh in-process broker with every actor moved onto it."""
    return configure_broker(None)


def test_the_domains_are_listed_once_in_dependency_order() -> None:
    assert [d.name for d in domains.DOMAINS] == ["payments", "ledger", "delivery", "notifications"]
    for domain in domains.DOMAINS:
        assert __import__(domain.name).domain is domain  # each declares its own


def test_every_onetrip_module_is_either_wiring_or_kernel_under_the_import_rules() -> None:
    """A new kernel module the `kernel` contract does not list would escape lint-imports."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    [kernel] = [c for c in config["contracts"] if c["id"] == "kernel"]
    listed = {name.removeprefix("onetrip.") for name in kernel["source_modules"]}
    present = {m.name for m in pkgutil.iter_modules(onetrip.__path__)}
    assert listed.isdisjoint(WIRING)
    assert present - WIRING == listed
    assert set(kernel["forbidden_modules"]) == {d.name for d in domains.DOMAINS}


def test_every_table_comes_from_a_listed_model_module() -> None:
    """So migrations and the schema test see every table without a hand-kept import."""
    metadata = domains.load_models()
    listed = {name for d in domains.every() for name in d.models}
    modules = {m.class_.__module__ for m in Base.registry.mappers}
    assert modules <= listed, modules - listed
    tables = set(metadata.tables)
    assert {"payments", "ledger_transactions", "courier_partners", "consumed_events"} <= tables


def test_the_worker_consumes_every_listed_queue_and_every_actor_uses_one(broker) -> None:  # type: ignore[no-untyped-def]
    domains.load_job_modules(broker)
    declared = broker.get_declared_queues()
    assert set(domains.queues()) <= declared
    listed = set(domains.queues())
    for name in broker.get_declared_actors():
        actor = broker.get_actor(name)
        if actor.fn.__module__.startswith(("tests.", "test_")):
            continue  # the test suite's own actors
        assert actor.queue_name in listed, (name, actor.queue_name)
    assert {"render_payment_receipt", "check_ledger_balances"} <= broker.get_declared_actors()


def test_the_app_serves_every_domain_s_routes() -> None:
    handlers = domains.route_handlers()
    names = {h.__name__ for h in handlers}
    assert {"PagesController", "TrackController", "AdminCourierPartnerController"} <= names
    assert len(handlers) == len(set(handlers))


def test_template_folders_exist_and_no_template_shadows_another() -> None:
    """Jinja takes the first folder that has a name: two files of one name would hide one."""
    folders = domains.template_dirs()
    assert folders and all(folder.is_dir() for folder in folders)
    names = Counter(
        str(path.relative_to(folder)) for folder in folders for path in folder.rglob("*.html")
    )
    assert [name for name, n in names.items() if n > 1] == []
    assert {"base.html", "pay.html", "track.html"} <= set(names)
