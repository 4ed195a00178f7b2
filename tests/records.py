"""Records for the schema tests (unit and registry): one with every field set, and a record as
a reader of an older schema version sees it."""

from __future__ import annotations

from typing import Any

from connector.record import Media, MmsEvent
from tests.helpers import RECEIVED_AT


def media_items(schema: dict[str, Any]) -> list[dict[str, Any]]:
    """The Media record's fields."""
    [media] = [f for f in schema["fields"] if f["name"] == "media"]
    return media["type"]["items"]["fields"]


def media_fields(schema: dict[str, Any]) -> list[str]:
    return [f["name"] for f in media_items(schema)]


def projected(record: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    """The record as a reader of `schema` sees it: its fields only, each at its default where
    the record has none (media entries alike: every media field added so far defaults to null).
    """
    out = {f["name"]: record.get(f["name"], f.get("default")) for f in schema["fields"]}
    out["media"] = [{k: m.get(k) for k in media_fields(schema)} for m in record["media"]]
    return out


def full_event() -> MmsEvent:
    return MmsEvent(
        event_id="e",
        provider="bandwidth-v2",
        event_type="failed",
        direction="outbound",
        owner="+19195550002",
        received_at=RECEIVED_AT,
        from_="+19195550002",
        to=["+17045551234"],
        cc=["+17045551235"],
        bcc=["+19195550002"],
        text="hi",
        subject="s",
        media=[
            Media(
                "s3://mms-media/ab/" + "ab" * 32,
                "image/png",
                10,
                "ab" * 32,
                "x.png",
                source_uri="https://media.example/x.png",
                url="https://cdn.example/ab/" + "ab" * 32,
                status="stored",
                reason=None,
            ),
            Media("https://media.example/y", status="unavailable", reason="http_404"),
        ],
        provider_message_id="m",
        application_id="a",
        tag="t",
        occurred_at=RECEIVED_AT,
        segment_count=1,
        error_code="4405",
        error_description="rejected",
        attributes={"k": "v"},
    )
