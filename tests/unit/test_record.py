"""Event ids: the same for the same identity on any replica and in any release (the golden
records beside tests/payloads pin the ids published so far)."""

from __future__ import annotations

import uuid

from hypothesis import given
from hypothesis import strategies as st

from connector.record import EVENT_ID_NAMESPACE, event_id

_PARTS = st.text(st.characters(exclude_categories=["Cs", "Cc"]), max_size=30)


@given(provider=_PARTS, identity=st.lists(st.one_of(_PARTS, st.none(), st.integers()), max_size=5))
def test_an_event_id_is_the_rfc_4122_uuid5_of_its_identity(
    provider: str, identity: list[object]
) -> None:
    # The ids already published were uuid.uuid5's: a faster derivation must give the same.
    parts = "\x1f".join("" if p is None else str(p) for p in identity)
    expected = uuid.uuid5(EVENT_ID_NAMESPACE, f"{provider}\x1e{parts}")
    assert event_id(provider, *identity) == str(expected)
    assert uuid.UUID(event_id(provider, *identity)).version == 5
