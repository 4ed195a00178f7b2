"""The callback mixes the benchmark replays, built from tests/payloads/ with unique ids.

A request is a list of byte chunks with id slots between them (`Template`): the load generator
fills every slot with a fixed-width unique token, so Content-Length never changes and a request
costs one `writelines` call, however large its body. Openmarket MOs carry inline images of
20-300 KB of random (incompressible) bytes; a slot inside each image's base64 makes every image
unique, so the connector's content-addressed media store really writes each one.
"""

from __future__ import annotations

import base64
import json
import random
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from bench.paths import REPO
from connector.config import Config
from connector.providers import PROVIDERS

PAYLOADS = REPO / "tests" / "payloads"

SLOT = "@@ID@@"
ID_WIDTH = 16  # a multiple of 4, so the token can stand in for base64 text too


@dataclass(frozen=True)
class Template:
    """One callback: provider, content type, and the body split around its id slots."""

    name: str
    provider: str
    content_type: str
    chunks: tuple[bytes, ...]  # len(chunks) == slots + 1

    @property
    def slots(self) -> int:
        return len(self.chunks) - 1

    @property
    def body_size(self) -> int:
        return sum(map(len, self.chunks)) + self.slots * ID_WIDTH

    def body(self, token: bytes) -> bytes:
        return token.join(self.chunks)

    def request(self, host: str) -> tuple[bytes, ...]:
        """The HTTP/1.1 request as chunks, with the id slots between them."""
        head = (
            f"POST {PATHS[self.provider]} HTTP/1.1\r\nHost: {host}\r\n"
            f"Content-Type: {self.content_type}\r\nContent-Length: {self.body_size}\r\n\r\n"
        ).encode()
        return (head + self.chunks[0], *self.chunks[1:])


def _split(name: str, provider: str, content_type: str, text: str | bytes) -> Template:
    raw = text.encode() if isinstance(text, str) else text
    chunks = tuple(raw.split(SLOT.encode()))
    if len(chunks) < 2:
        raise ValueError(f"{name}: no id slot")
    return Template(name, provider, content_type, chunks)


def _json(path: str) -> object:
    return json.loads((PAYLOADS / path).read_text())


def bandwidth_v2() -> list[tuple[Template, int]]:
    out = []
    for file, weight in (
        ("message_received_mms.json", 4),
        ("message_sending.json", 2),
        ("message_delivered_and_failed.json", 2),  # two events in one callback
        ("group_message_received.json", 2),
    ):
        events = _json(f"bandwidth_v2/{file}")
        assert isinstance(events, list)
        for i, event in enumerate(events):
            event["message"]["id"] = f"{SLOT}-{i}"
        body = json.dumps(events, ensure_ascii=False)
        out.append((_split(file, "bandwidth-v2", "application/json", body), weight))
    return out


def bandwidth_v1() -> list[tuple[Template, int]]:
    out = []
    for file, weight in (("inbound_mms.json", 2), ("outbound_delivered.json", 1)):
        event = _json(f"bandwidth_v1/{file}")
        assert isinstance(event, dict)
        event["messageId"] = f"m-{SLOT}"
        body = json.dumps(event, ensure_ascii=False)
        out.append((_split(file, "bandwidth-v1", "application/json", body), weight))
    return out


def sinch_xml() -> list[tuple[Template, int]]:
    out = []
    for file, tracking_id, weight in (
        ("mms_mo.xml", "MMS_MO_iLnCRrL6", 3),
        ("mms_mo_namespaced.xml", "MMS_MO_7fQk2LzX", 1),
    ):
        text = (PAYLOADS / "sinch" / file).read_text()
        text = text.replace(
            f"<tracking-id>{tracking_id}</tracking-id>", f"<tracking-id>MMS_MO_{SLOT}</tracking-id>"
        )
        out.append((_split(file, "sinch", "application/xml", text), weight))
    return out


def sinch_json() -> list[tuple[Template, int]]:
    event = _json("sinch/mms_mo.json")
    assert isinstance(event, dict)
    event["tracking-id"] = f"MMS_MO_{SLOT}"
    body = json.dumps(event, ensure_ascii=False)
    return [(_split("mms_mo.json", "sinch", "application/json", body), 1)]


def openmarket_report() -> list[tuple[Template, int]]:
    event = _json("openmarket/report_delivered.json")
    assert isinstance(event, dict)
    event["mtId"] = f"MT-{SLOT}"
    body = json.dumps(event)
    return [(_split("report_delivered.json", "openmarket", "application/json", body), 1)]


def _image_b64(size: int, rng: random.Random) -> str:
    """Random bytes as MIME base64 (76-character lines) with an id slot at its start.

    Wrapped before the slot goes in, so once the id fills it every line is 76 characters, as
    an encoder writes them (wrapped after, the first line was 86).
    """
    encoded = base64.b64encode(rng.randbytes(size)).decode()
    wrapped = "\r\n".join(encoded[i : i + 76] for i in range(0, len(encoded), 76))
    return SLOT + wrapped[ID_WIDTH:]  # the slot stands in for the first 16 characters


def openmarket_mo(variants: int = 12, seed: int = 7) -> list[tuple[Template, int]]:
    """MOs with 1-3 inline images of 20-300 KB each (log-uniform), a SMIL and a text part."""
    rng = random.Random(seed)
    out = []
    for v in range(variants):
        boundary = f"----=_Part_{v}_{rng.getrandbits(40):x}"
        images = [int(20_000 * (15 ** rng.random())) for _ in range(rng.choice((1, 1, 2, 3)))]
        details = {
            "type": "MO",
            "moId": SLOT,
            "source": "447800000001",
            "destinations": ["88600"],
            "ccs": [],
            "bccs": [],
            "date": "2024-06-01T10:00:00Z",
            "mobileOperatorId": 77,
            "subject": "Holiday",
            "userAgent": "Pixel 8",
        }
        parts = [
            f"Content-Type: application/json\r\nContent-Id: main\r\n\r\n{json.dumps(details)}",
            "Content-Type: application/smil\r\nContent-Location: presentation.smil\r\n\r\n"
            '<smil><body><par dur="5000ms"><img src="photo1.jpg"/></par></body></smil>',
        ]
        for i, size in enumerate(images):
            parts.append(
                f"Content-Type: image/jpeg\r\nContent-Id: <photo{i}.jpg>\r\n"
                f"Content-Transfer-Encoding: base64\r\n\r\n{_image_b64(size, rng)}"
            )
        parts.append("Content-Type: text/plain; charset=utf-8\r\n\r\nGreetings from the beach")
        body = "".join(f"--{boundary}\r\n{p}\r\n" for p in parts) + f"--{boundary}--\r\n"
        ctype = f'multipart/mixed; boundary="{boundary}"'
        out.append((_split(f"mo-{v}-{'+'.join(map(str, images))}", "openmarket", ctype, body), 1))
    return out


# --- the providers added since (inbound MMS mostly, some status reports; weights total 10) -----

FORM = "application/x-www-form-urlencoded"


def _slotted(original: str, keep: int = 0) -> str:
    """An id with the slot over its characters from `keep` on: as long as the original, and
    still recognisable (a Twilio SID keeps its `MM`, a UUID its last groups)."""
    if len(original) < keep + ID_WIDTH:
        raise ValueError(f"{original!r}: shorter than the {ID_WIDTH}-character slot")
    return original[:keep] + SLOT + original[keep + ID_WIDTH :]


def _form(path: str) -> tuple[str, dict[str, str]]:
    """A form file's raw text (percent-encoding kept byte for byte) and its decoded fields."""
    text = (PAYLOADS / path).read_text()
    return text, dict(parse_qsl(text, keep_blank_values=True))


def _set_field(text: str, name: str, value: str) -> str:
    """The form with field `name`'s raw value replaced; `value` must need no percent-encoding
    (the slot's token is alphanumeric, so a slotted id does not)."""
    pattern = re.compile(rf"(?:^|(?<=&)){re.escape(name)}=[^&]*")
    text, count = pattern.subn(lambda _m: f"{name}={value}", text)
    if count != 1:
        raise ValueError(f"form field {name!r} found {count} times")
    return text


def twilio() -> list[tuple[Template, int]]:
    """Incoming MMS (1 and 3 media) and MMS status callbacks: the MessageSid makes the event
    id (with MessageStatus and RawDlrDoneDate); SmsSid and SmsMessageSid repeat it, as do the
    MediaUrl paths."""
    out = []
    for file, weight in (
        ("southport_inbound_mms_1media.form", 4),
        ("written_inbound_mms_3media_service.form", 3),
        ("va_status_delivered.form", 2),
        ("va_status_failed_30008.form", 1),
    ):
        text, fields = _form(f"twilio/{file}")
        sid = fields["MessageSid"]
        if len(sid) == 34:  # a real SID: MM + 32 hex digits, wherever it appears
            text = text.replace(sid, _slotted(sid, keep=2))
        else:  # redacted by the source (SMyyy): an MMS's SID in Twilio's format
            text = _set_field(text, "MessageSid", f"MM{SLOT}5e0c3a9d1b7f2e64")
        for twin in ("SmsSid", "SmsMessageSid"):
            if twin in fields and fields[twin] != sid:
                text = _set_field(text, twin, f"MM{SLOT}5e0c3a9d1b7f2e64")
        out.append((_split(file, "twilio", FORM, text), weight))
    return out


def plivo() -> list[tuple[Template, int]]:
    """Inbound MMS (Media1.., Media0..) and MMS status callbacks: the MessageUUID makes the
    event id (with Status and Sequence); ParentMessageUUID repeats it."""
    out = []
    for file, weight in (
        ("inbound_mms.written.form", 4),
        ("inbound_mms_media0.written.form", 3),
        ("status_delivered_mms.written.form", 2),
        ("status_undelivered_mms.written.form", 1),
    ):
        text, fields = _form(f"plivo/{file}")
        uuid = fields["MessageUUID"]
        text = text.replace(uuid, _slotted(uuid))
        out.append((_split(file, "plivo", FORM, text), weight))
    return out


def telnyx() -> list[tuple[Template, int]]:
    """message.received MMS (one and a group), an MMS message.sent and a group's
    message.finalized (a record per recipient): data.id makes the event id; payload.id, the
    message's, is slotted too."""
    out = []
    for file, weight in (
        ("inbound_mms.telnyx-dotnet.json", 3),
        ("inbound_mms.docs-receive-message.json", 2),
        ("inbound_group_mms.ours.json", 2),
        ("message_sent_mms.openapi-example.json", 2),
        ("finalized_group_mms.ours.json", 1),  # three recipients: three records
    ):
        event = _json(f"telnyx/{file}")
        assert isinstance(event, dict)
        data = event["data"]
        data["id"] = _slotted(data["id"])
        data["payload"]["id"] = _slotted(data["payload"]["id"])
        body = json.dumps(event, ensure_ascii=False)
        out.append((_split(file, "telnyx", "application/json", body), weight))
    return out


def vonage() -> list[tuple[Template, int]]:
    """Messages API inbound MMS (image + video, a vCard) and status webhooks (submitted,
    delivered, rejected): message_uuid makes the event id (with status and timestamp)."""
    out = []
    for file, weight in (
        ("written_inbound_mms_image_and_video.json", 4),
        ("written_inbound_mms_vcard.json", 3),
        ("written_status_submitted.json", 1),
        ("written_status_delivered.json", 1),
        ("written_status_rejected.json", 1),
    ):
        event = _json(f"vonage/{file}")
        assert isinstance(event, dict)
        uuid = event["message_uuid"]
        event["message_uuid"] = _slotted(uuid)
        if "_self" in event:
            event["_self"]["href"] = event["_self"]["href"].replace(uuid, event["message_uuid"])
        body = json.dumps(event, ensure_ascii=False)
        out.append((_split(file, "vonage", "application/json", body), weight))
    return out


def infobip() -> list[tuple[Template, int]]:
    """Received MMS (a group with SMIL and text parts, single ones) and v2 delivery reports (one,
    and a batch of four outcomes): each result's messageId makes its event id."""
    out = []
    for file, weight in (
        ("written_inbound_group_text_parts_and_smil.json", 3),
        ("courier_test_inbound_mms.json", 2),
        ("openapi_inbound_mms_single.json", 2),
        ("openapi_v2_delivery_report.json", 2),
        ("written_v2_reports_every_outcome.json", 1),  # four reports in one callback
    ):
        batch = _json(f"infobip/{file}")
        assert isinstance(batch, dict)
        for result in batch["results"]:
            result["messageId"] = _slotted(result["messageId"])  # distinct tails in a batch
        body = json.dumps(batch, ensure_ascii=False)
        out.append((_split(file, "infobip", "application/json", body), weight))
    return out


Generator = Callable[[], list[tuple[Template, int]]]

# The callbacks the benchmark sends, by the connector's provider name (connector.providers):
# what a provider has no generator for, no mix sends and no benchmark enables (`left_out`).
GENERATORS: dict[str, dict[str, Generator]] = {
    "bandwidth-v1": {"json": bandwidth_v1},
    "bandwidth-v2": {"json": bandwidth_v2},
    "openmarket": {"report": openmarket_report, "mo": openmarket_mo},
    "sinch": {"xml": sinch_xml, "json": sinch_json},
    "twilio": {"form": twilio},
    "telnyx": {"json": telnyx},
    "plivo": {"form": plivo},
    "vonage": {"json": vonage},
    "infobip": {"json": infobip},
}

# What a provider's config needs for these callbacks: the seeds' national numbers are American
# (Twilio's and Telnyx's are all E.164; Infobip's Swiss and Croatian ones read as international).
SETTINGS: dict[str, dict[str, Any]] = {
    "bandwidth-v1": {"default_country": "US"},
    "bandwidth-v2": {"default_country": "US"},
    "sinch": {"default_country": "US"},
    "plivo": {"default_country": "US"},
    "vonage": {"default_country": "US"},
    "infobip": {"default_country": "US"},
}

# Each mix: (provider, its generator, share); a generator's weights are multiplied by the share.
_MIXES: dict[str, tuple[tuple[str, str, int], ...]] = {
    "json": (("bandwidth-v2", "json", 1),),
    "xml": (("sinch", "xml", 1),),
    "multipart": (("openmarket", "mo", 1),),
    "mixed": (
        ("bandwidth-v2", "json", 40),
        ("bandwidth-v1", "json", 15),
        ("sinch", "xml", 15),
        ("sinch", "json", 10),
        ("openmarket", "report", 15),
        ("openmarket", "mo", 5),
    ),
    # Every provider an equal share of the callbacks: 60 weight units each (a generator's
    # weights times its share; openmarket's MO has 12 variants of weight 1). Inbound-heavy:
    # ~70 % received MMS, as each generator weighs them.
    "providers": (
        ("bandwidth-v2", "json", 6),  # 10 x 6
        ("bandwidth-v1", "json", 20),  # 3 x 20
        ("sinch", "xml", 12),  # 4 x 12
        ("sinch", "json", 12),  # 1 x 12
        ("openmarket", "mo", 3),  # 12 x 3
        ("openmarket", "report", 24),  # 1 x 24
        ("twilio", "form", 6),  # 10 x 6 each
        ("telnyx", "json", 6),
        ("plivo", "form", 6),
        ("vonage", "json", 6),
        ("infobip", "json", 6),
    ),
}
MIXES = tuple(_MIXES)

# The connector's providers this benchmark has callbacks for, in the connector's order.
COVERED = [name for name in PROVIDERS if name in GENERATORS]


def provider_settings(name: str) -> dict[str, Any]:
    """`providers.<name>` enabling a covered provider for these callbacks. The benchmark posts
    them unsigned and without credentials: `auth.unauthenticated` says so (a provider that
    declares a signature checks it only when `auth.signature` gives keys, which this sets
    none of; without it the connector only warns at start-up)."""
    return {"enabled": True, "auth": {"unauthenticated": True}, **SETTINGS.get(name, {})}


def _route_paths() -> dict[str, str]:
    config = Config.model_validate({"providers": {n: provider_settings(n) for n in COVERED}})
    return {name: config.route_path(name) for name in COVERED}


# Where the connector takes each covered provider's callbacks.
PATHS = _route_paths()


def left_out() -> list[str]:
    """Notes on what the connector and these generators do not share (for the run to print)."""
    notes = [
        f"provider {name}: no callback generator in bench/payloads.py; no mix sends it any"
        for name in PROVIDERS
        if name not in GENERATORS
    ]
    notes += [
        f"bench/payloads.py has callbacks for {name}, which the connector does not know: skipped"
        for name in GENERATORS
        if name not in PROVIDERS
    ]
    return notes


def providers_of(name: str) -> list[str]:
    """The covered providers mix `name` sends callbacks of (none: nothing to send)."""
    return sorted({provider for provider, _g, _s in _MIXES[name] if provider in PATHS})


def mix(name: str) -> list[tuple[Template, int]]:
    if name not in _MIXES:
        raise ValueError(f"unknown mix {name!r}; known: {', '.join(MIXES)}")
    return [
        (template, weight * share)
        for provider, generator, share in _MIXES[name]
        if provider in PATHS
        for template, weight in GENERATORS[provider][generator]()
    ]


def sequence(templates: list[tuple[Template, int]], length: int = 1000, seed: int = 1) -> list[int]:
    """A fixed, shuffled order of template indexes following the weights (cycled by senders)."""
    rng = random.Random(seed)
    indexes = [i for i, (_t, w) in enumerate(templates) for _ in range(w)]
    return [rng.choice(indexes) for _ in range(length)]


def tokens(prefix: str) -> Iterator[bytes]:
    """Unique fixed-width tokens: the run's prefix, then a counter (alphanumeric only)."""
    width = ID_WIDTH - len(prefix)
    n = 0
    while True:
        yield f"{prefix}{n:0{width}d}".encode()
        n += 1
