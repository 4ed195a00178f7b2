"""Codec.register at start-up: idempotent under concurrent replicas, patient with a registry
that does not answer yet (the real registry's side: tests/integration/test_schema_registry.py)."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from confluent_kafka.schema_registry.error import SchemaRegistryError

from connector.codec import Codec, RegistryUnavailable


class Registry:
    """Answers as the schema registry would, after `failures` (exceptions) first."""

    def __init__(self, *failures: Exception, level: str | None = None, on: str = "") -> None:
        self.failures = list(failures)
        self.level = level
        self.on = on  # only calls of this name fail (empty: any)
        self.calls: list[str] = []

    def _maybe_fail(self, call: str) -> None:
        self.calls.append(call)
        if self.failures and call.startswith(self.on):
            raise self.failures.pop(0)

    def get_compatibility(self, _subject: str) -> str:
        self._maybe_fail("get_compatibility")
        if self.level is None:
            raise SchemaRegistryError(404, 40401, "Subject not found")
        return self.level

    def set_compatibility(self, _subject: str, level: str) -> dict[str, Any]:
        self._maybe_fail("set_compatibility")
        self.level = level
        return {"compatibility": level}

    def register_schema(self, _subject: str, _schema: object) -> int:
        self._maybe_fail("register_schema")
        return 7


def codec(registry: Registry, patience: float = 0.0) -> Codec:
    return Codec(registry, "BACKWARD_TRANSITIVE", patience)  # type: ignore[arg-type]


def test_a_level_already_set_is_not_written_again() -> None:
    registry = Registry(level="BACKWARD_TRANSITIVE")
    assert codec(registry).register("t") == 7
    assert "set_compatibility" not in registry.calls


def test_another_replica_creating_the_rule_first_is_success() -> None:
    # Apicurio's answer to the second of two concurrent first writes.
    registry = Registry()
    conflict = SchemaRegistryError(409, 0, "A rule named 'COMPATIBILITY' already exists.")
    registry.failures = [SchemaRegistryError(404, 40401, "not found"), conflict]
    assert codec(registry).register("t") == 7
    assert registry.level == "BACKWARD_TRANSITIVE"


def test_a_different_level_is_updated_and_said(caplog: pytest.LogCaptureFixture) -> None:
    registry = Registry(level="FULL")
    with caplog.at_level(logging.WARNING):
        codec(registry).register("t")
    assert registry.level == "BACKWARD_TRANSITIVE"
    assert "compatibility FULL set to BACKWARD_TRANSITIVE" in caplog.text


def test_a_registry_not_answering_yet_is_waited_for(caplog: pytest.LogCaptureFixture) -> None:
    registry = Registry(ConnectionError("refused"), SchemaRegistryError(503, 50301, "starting"))
    with caplog.at_level(logging.WARNING):
        assert codec(registry, patience=10).register("t") == 7
    assert caplog.text.count("schema registry not answering") == 2


def test_past_the_patience_start_up_fails_saying_why() -> None:
    registry = Registry(*[ConnectionError("refused")] * 100)
    with pytest.raises(RegistryUnavailable, match=r"not answering after 0\.6 s: refused"):
        codec(registry, patience=0.6).register("t")


def test_an_answer_is_not_retried() -> None:
    # 409 on registering: an incompatible schema; waiting would not change it.
    incompatible = SchemaRegistryError(409, 409, "incompatible")
    registry = Registry(incompatible, level="BACKWARD_TRANSITIVE", on="register_schema")
    with pytest.raises(SchemaRegistryError, match="incompatible"):
        codec(registry, patience=10).register("t")
    assert registry.calls.count("register_schema") == 1
