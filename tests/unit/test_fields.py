"""Shared JSON helpers: the nesting limit holds whatever the brackets inside strings say."""

from __future__ import annotations

import pytest

from connector.providers.contract import Refusal
from connector.providers.fields import MAX_JSON_DEPTH, parse_json


def nested(levels: int) -> bytes:
    return b"[" * levels + b"]" * levels


@pytest.mark.parametrize(
    ("body", "refusal"),
    [
        (nested(MAX_JSON_DEPTH), None),
        (nested(MAX_JSON_DEPTH + 1), "json_too_deep"),
        (b'{"a":' * 20 + b'{"b":[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]}' + b"}" * 20, "json_too_deep"),
        # Brackets inside strings count in the quick check but not in the real depth.
        (b'{"text":"' + b"[{" * 100 + b'"}', None),
        (b"[" + b'{"a":[1,{"b":2}]},' * 200 + b"1]", None),
        (b"[1,", "invalid_json"),
    ],
)
def test_json_nesting_limit(body: bytes, refusal: str | None) -> None:
    if refusal is None:
        parse_json(body)
    else:
        with pytest.raises(Refusal) as caught:
            parse_json(body)
        assert caught.value.code == refusal
