"""Actors run with the Runtime their process declared them with; a broker declared without one only enqueues."""

from __future__ import annotations

import json

import dramatiq
import pytest
from dramatiq.brokers.stub import StubBroker
from sqlmodel import Session

from app.db import make_engine
from app.deliveries.records import NewDelivery
from app.deliveries.stores import store_for
from app.migrate import upgrade
from app.models import Delivery
from app.queue.actors import DELIVERIES_QUEUE, declare_actors
from app.runtime import Runtime
from app.settings import Settings


def _database_with_one_delivery(tmp_path, delivery_id: str):
    url = f"sqlite:///{tmp_path / 'draftsmith.db'}"
    engine = make_engine(url)
    upgrade(engine)
    store = store_for(url, lambda: engine)
    try:
        store.insert([NewDelivery(id=delivery_id, event="issues", action="opened", installation_id=None,
                                  body=json.dumps({"action": "opened"}).encode())])
    finally:
        store.close()
    return url, engine


def test_a_message_is_handled_with_the_runtime_its_actors_were_declared_with(tmp_path):
    # Given a recorded delivery, and a broker whose actors were declared with a Runtime on that database
    url, engine = _database_with_one_delivery(tmp_path, "d-1")
    broker = StubBroker()
    runtime = Runtime(Settings(DATABASE_URL=url, DRAFTSMITH_DATA_DIR=str(tmp_path)), engine=engine, broker=broker,
                      github=None)
    actors = declare_actors(broker, runtime)
    worker = dramatiq.Worker(broker, worker_timeout=50)
    worker.start()
    try:
        # When a worker takes a process_deliveries message for it
        actors.process_deliveries.send(["d-1"])
        broker.join(DELIVERIES_QUEUE, fail_fast=True)
        worker.join()
    finally:
        worker.stop()
        runtime.close()

    # Then the outcome is stored in that Runtime's database (no handler listens to issues.opened)
    with Session(engine) as session:
        assert session.get(Delivery, "d-1").status == "ignored"
    engine.dispose()


def test_actors_declared_without_a_runtime_refuse_to_run():
    actors = declare_actors(StubBroker())

    with pytest.raises(RuntimeError, match="run_task was declared without a Runtime"):
        actors.run_task(1)
