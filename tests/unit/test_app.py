"""Routing of the app, without Kafka (the lifespan is not started)."""

from __future__ import annotations

import asyncio
import time

import pytest
from starlette.testclient import TestClient

from connector.app import create_app
from connector.callbacks import CallbackHandler
from connector.config import Config, ConfigError


def client(providers: dict) -> TestClient:
    return TestClient(create_app(Config.model_validate({"providers": providers}), env={}))


def test_disabled_and_unconfigured_providers_have_no_route() -> None:
    app = client({"bandwidth-v2": {"enabled": True}, "sinch": {"enabled": False}})
    assert app.post("/callbacks/sinch", content=b"<postback/>").status_code == 404
    assert app.post("/callbacks/openmarket", content=b"").status_code == 404
    assert app.get("/callbacks/bandwidth-v2").status_code == 405


def test_health_before_start() -> None:
    app = client({})
    assert app.get("/healthz").json() == {"status": "ok"}
    assert app.get("/readyz").status_code == 503
    assert b"\nmms_event_loop_lag_seconds 0.0\n" in app.get("/metrics").content


def test_token_in_path_moves_the_route() -> None:
    app = TestClient(
        create_app(
            Config.model_validate(
                {
                    "providers": {
                        "sinch": {
                            "enabled": True,
                            "auth": {"token": {"in_path": True, "value": {"env": "T"}}},
                        }
                    }
                }
            ),
            env={"T": "s3cret"},
        )
    )
    assert app.post("/callbacks/sinch", content=b"").status_code == 404
    # Routed by Starlette (a path parameter) to the same handler as a tokenless path.
    assert app.post("/callbacks/sinch/s3cret", content=b"").json()["error"] == "starting"


def test_missing_secret_stops_the_app_naming_the_key() -> None:
    config = Config.model_validate(
        {
            "providers": {
                "sinch": {
                    "enabled": True,
                    "auth": {"basic": {"username": "u", "password": {"env": "MMS_SINCH_PASSWORD"}}},
                }
            }
        }
    )
    with pytest.raises(ConfigError, match=r"providers\.sinch\.auth\.basic\.password.*MMS_SINCH"):
        create_app(config, env={})


def test_served_before_start_up_a_callback_is_503_starting() -> None:
    app = client({"bandwidth-v2": {"enabled": True}})
    reply = app.post("/callbacks/bandwidth-v2", content=b"[]")
    assert (reply.status_code, reply.json()["error"]) == (503, "starting")
    assert reply.headers["retry-after"] == "5"


def test_an_unexpected_failure_is_a_json_500_without_traceback(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    def bug(_raw: object) -> dict[str, str]:
        raise RuntimeError("a bug of ours")

    app = client({"bandwidth-v2": {"enabled": True}})
    handler = next(r.endpoint for r in app.app.routes if isinstance(r.endpoint, CallbackHandler))
    # On the handler's authenticator, not a function of connector.callbacks: the compiled
    # build (setup.py) calls its own functions directly, past any monkeypatch.
    monkeypatch.setattr(handler.auth, "check", bug)
    body = b'[{"type":"message-received","message":{"id":"1","owner":"+19195550002"}}]'
    reply = app.post("/callbacks/bandwidth-v2", content=body)
    assert (reply.status_code, reply.json()) == (500, {"error": "internal_error"})
    assert reply.headers["content-type"] == "application/json"
    assert "Traceback" not in reply.text
    assert "callback handling failed" in caplog.text


def test_a_late_event_loop_sheds_callbacks_with_503() -> None:
    app = create_app(Config.model_validate({"providers": {"bandwidth-v2": {"enabled": True}}}))
    handler = next(r.endpoint for r in app.routes if isinstance(r.endpoint, CallbackHandler))
    handler.runtime.loop_lag.seconds = 0.2  # over the default 50 ms
    reply = TestClient(app).post("/callbacks/bandwidth-v2", content=b"[]")
    assert (reply.status_code, reply.headers["retry-after"]) == (503, "5")
    assert reply.json()["error"] == "overloaded"


def test_the_in_flight_gauge_follows_the_count() -> None:
    from prometheus_client import REGISTRY

    from connector.callbacks import IN_FLIGHT_REPORT_SECONDS, Runtime, report_in_flight
    from connector.dedupe import Window

    def gauge() -> float | None:
        return REGISTRY.get_sample_value("mms_in_flight_requests")

    async def scenario() -> tuple[float | None, float | None]:
        runtime = Runtime(Config.model_validate({}), {}, Window(60, 10))
        runtime.in_flight = 3
        reporter = asyncio.create_task(report_in_flight(runtime))
        await asyncio.sleep(0)
        busy = gauge()
        runtime.in_flight = 0
        await asyncio.sleep(IN_FLIGHT_REPORT_SECONDS * 1.5)
        reporter.cancel()
        return busy, gauge()

    assert asyncio.run(scenario()) == (3, 0)


def test_loop_lag_counts_sustained_lateness_not_one_stall() -> None:
    from connector.callbacks import LoopLag

    async def scenario() -> tuple[float, float, float]:
        lag = LoopLag()
        watcher = asyncio.create_task(lag.watch())
        await asyncio.sleep(0.05)
        time.sleep(0.1)  # one stall: a descheduled process, one large body
        await asyncio.sleep(0.005)  # the watcher's overdue tick runs first
        one_stall = lag.seconds
        for _ in range(20):  # a saturated CPU: every tick late
            time.sleep(0.1)
            await asyncio.sleep(0.005)
        saturated = lag.seconds
        await asyncio.sleep(0.5)
        watcher.cancel()
        return one_stall, saturated, lag.seconds

    one_stall, saturated, recovered = asyncio.run(scenario())
    assert 0.01 < one_stall < 0.05  # noticed, under the default 50 ms limit
    assert saturated > 0.08
    assert recovered < 0.01
