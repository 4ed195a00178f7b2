"""The plugin's own table, run by the connector's shared harness (tests/harness.py): a plugin
gets the same runner as the built-in providers (with the connector's repository on the path)."""

from __future__ import annotations

from tests import harness
from tests.harness import Case

JSON = {"Content-Type": "application/json"}
MO = (
    '{"type":"mo","id":"a1","from":"+14155550100","to":"+14155550199",'
    '"text":"Hi\\n\\nthere","time":"2026-01-01T12:00:00Z","channel":"mms",'
    '"media":[{"url":"https://media.acme.example/m/1.jpg","content_type":"image/jpeg"}]}'
)

# What a hosted media entry leaves unset until the mirror has fetched it.
UNFETCHED = dict.fromkeys(("size", "sha256", "source_uri", "url", "reason"))

TABLE = [
    Case(
        "an MO: our number is `to`, the rest kept",
        body=MO,
        headers=JSON,
        fields={
            "event_type": "received",
            "owner": "+14155550199",
            "from": "+14155550100",
            "text": "Hi\n\nthere",
            "media": [
                {
                    **UNFETCHED,
                    "uri": "https://media.acme.example/m/1.jpg",
                    "filename": "1.jpg",
                    "status": "provider",
                    "content_type": "image/jpeg",
                }
            ],
            "attributes": harness.including({"channel": "mms"}),
        },
    ),
    Case(
        "the plugin's own option splits the subject off",
        body=MO,
        headers=JSON,
        settings={"subject_in_text": True},
        fields={"subject": "Hi", "text": "there"},
    ),
    Case(
        "a delivered status: our number is `from`",
        body='{"type":"status","id":"a2","status":"delivered","from":"+14155550199",'
        '"to":"+14155550100"}',
        headers=JSON,
        fields={"event_type": "delivered", "direction": "outbound", "owner": "+14155550199"},
    ),
    Case(
        "an unknown status",
        body='{"type":"status","id":"a3","status":"lost","from":"1","to":"2"}',
        refused=("unknown_status", 400),
    ),
    Case("not an object", body="[]", refused=("invalid_event", 400)),
    Case(
        "over the media budget",
        body=MO,
        settings={"max_media": 0},
        refused=("too_many_media", 413),
    ),
]

test_table = harness.table_test("acme", TABLE)
