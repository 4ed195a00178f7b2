"""Sinch MMS postbacks (MOs and MT reports, in Sinch's and Skycore's dialects; XML, JSON or an
XML form field) to canonical records: the table (tests/harness.py runs it), golden records
beside the payloads in tests/payloads/sinch/ (README.md there cites each file's source)."""

from __future__ import annotations

import encodings
import json
import os
import re
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

from connector.providers.contract import Callback
from connector.providers.sinch import NAME
from connector.record import Media, event_id
from tests import harness
from tests.harness import ABSENT, Case, including
from tests.helpers import RECEIVED_AT, payload

MODULE = harness.module_of(NAME)
CONTENT = "https://mms-content.example.com/mo"
XML = {"Content-Type": "application/xml"}
JSON = {"Content-Type": "application/json"}
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
# The fields every MO must have, for building small XML postbacks.
REQUIRED = "<origin>MMS_MO</origin><tracking-id>MMS_MO_t1</tracking-id><to>28444</to>"
MO_XML = payload(MODULE, "mms_mo.xml")
MO_JSON = payload(MODULE, "mms_mo.json")
# The documented Sinch MO in Skycore's dialect: the same values, so the same record.
SKYCORE_MO = payload(MODULE, "skycore_mms_mo.written.xml").decode()
SKYCORE_N102 = payload(MODULE, "skycore_v13_mms_mt_N102_binary.xml").decode()
XSI = "http://www.w3.org/2001/XMLSchema-instance"
SKYCORE_XSD = "http://www.skycore.com/schema/postback.xsd"
# The tracking id of the MT of Skycore's examples.
TRACKED = "<TRACKINGID>TU1TXzU5Nzg3OQ==</TRACKINGID>"
translate = harness.Translator(NAME)


def postback(*elements: str) -> str:
    return f"<postback>{REQUIRED}{''.join(elements)}</postback>"


def mo_json(**fields: Any) -> str:
    """A JSON MO with the required fields; keyword names use '_' for the documented '-'."""
    data = {"origin": "MMS_MO", "tracking-id": "MMS_MO_t1", "to": "28444"}
    data |= {k.replace("_", "-"): v for k, v in fields.items()}
    return json.dumps(data, ensure_ascii=False)


def deep_xml(levels: int) -> str:
    return postback("<x>" * levels + "</x>" * levels)


def files_in(urls: list[str]) -> str:
    return postback("<content>" + "".join(f"<file>{u}</file>" for u in urls) + "</content>")


def declared(encoding: str, subject: str) -> Case:
    head = f'<?xml version="1.0" encoding="{encoding}"?>'
    body = (head + postback(f"<message-subject>{subject}</message-subject>")).encode(encoding)
    return Case(
        f"declared encoding {encoding}", body=body, headers=XML, fields={"subject": subject}
    )


def refused(label: str, body: bytes | str, headers: dict[str, str], code: str) -> Case:
    # Answered 400 and dead-lettered (Sinch sends it again 5 times, 5 minutes apart).
    return Case(label, body=body, headers=headers, refused=(code, 400))


def report(code: str, *elements: str, origin: str = "MMS_MT") -> str:
    """A Skycore MT report from our short code 60856, with numbers and ids of Skycore's examples."""
    fields = f"<ORIGIN>{origin}</ORIGIN><CODE>{code}</CODE><FROM>60856</FROM><TO>16502424956</TO>"
    return f"<POSTBACK>{fields}{TRACKED}{''.join(elements)}</POSTBACK>"


def notified(*documents: str) -> str:
    """Skycore postbacks as its form before July 2014 had them: in one <POSTBACK>, each
    wrapped in a <NOTIFICATION>."""
    inner = (d.strip().removeprefix("<POSTBACK>").removesuffix("</POSTBACK>") for d in documents)
    return f"<POSTBACK>{''.join(f'<NOTIFICATION>{i}</NOTIFICATION>' for i in inner)}</POSTBACK>"


# Sinch's names for the fields Skycore names otherwise; the rest it writes in lower case.
SINCH_NAMES = {
    "TRACKINGID": "tracking-id",
    "SPID": "operator-id",
    "MMSID": "mms-id",
    "SENTAS": "sent-as",
}


def in_sinch_names(document: str) -> str:
    return re.sub(
        r"<(/?)([A-Z]+)>", lambda m: f"<{m[1]}{SINCH_NAMES.get(m[2], m[2].lower())}>", document
    )


def form(**fields: str) -> str:
    return "&".join(f"{name}={quote_plus(value)}" for name, value in fields.items())


# Bodies and headers that read as the XML or the JSON payload file (label: (body, headers)).
FORMS = {
    "Application/XML": (MO_XML, {"Content-Type": "Application/XML; charset=UTF-8"}),
    "text/xml": (MO_XML, {"content-type": "text/xml"}),
    "upper case": (MO_XML, {"CONTENT-TYPE": "TEXT/XML;charset=utf-8"}),
    "+xml suffix": (MO_XML, {"Content-Type": " application/soap+xml "}),
    "xml sniffed after whitespace": (b"\r\n\t " + MO_XML, {}),
    "xml as form": (MO_XML, {"Content-Type": "application/x-www-form-urlencoded"}),
    "json": (MO_JSON, {"Content-Type": "application/json; charset=utf-8"}),
    "Application/JSON": (MO_JSON, {"Content-Type": "Application/JSON"}),
    "+json suffix": (MO_JSON, {"Content-Type": "application/vnd.sinch+json"}),
    "json sniffed as text/plain": (MO_JSON, {"Content-Type": "text/plain"}),
    "json sniffed after BOM": (b"\xef\xbb\xbf\n " + MO_JSON, {}),
    "json with BOM": (b"\xef\xbb\xbf" + MO_JSON, JSON),
}
TWENTY = [f"{CONTENT}/MMS_MO_t1/part{i:02}.jpg" for i in range(20)]
TWENTY_MEDIA = [
    Media(u, filename=f"part{i:02}.jpg", status="provider") for i, u in enumerate(TWENTY)
]
BILLION_LAUGHS = payload(MODULE, "billion_laughs.xml")

TABLE = [
    # The documented XML example, with real URLs in place of the placeholders.
    Case("the documented XML MO", file="mms_mo.xml", headers=XML, golden="mms_mo_xml"),
    Case(
        "the JSON form of the documented XML MO gives the same record",
        body=mo_json(
            code="N401",
            tracking_id="MMS_MO_iLnCRrL6",
            **{"from": "14082257140"},
            keyword="all",
            operator_id="31002",
            timestamp="2014-02-03T11:19:49-05:00",
            message_subject="",
            content=[
                {"file": f"{CONTENT}/MMS_MO_iLnCRrL6/{n}"} for n in ("IMG_0417.jpg", "text_0.txt")
            ]
            + [f"{CONTENT}/MMS_MO_iLnCRrL6/smil.xml"],
        ),
        headers=JSON,
        golden="mms_mo_xml",
    ),
    Case("a JSON MO", file="mms_mo.json", headers=JSON, golden=True),
    Case(
        "namespaced XML",
        file="mms_mo_namespaced.xml",
        headers={"Content-Type": "Application/XML; charset=UTF-8"},
        golden=True,
    ),
    Case(
        "namespaced XML with CDATA, comments and whitespace",
        file="mms_mo_namespaced.xml",
        headers=XML,
        golden="mms_mo_namespaced",
    ),
    # Content as plain strings; a URL ending in a slash names no file.
    Case("JSON content strings", file="mms_mo_content_strings.json", golden=True),
    Case(
        "latin-1 XML", file="mms_mo_latin1.xml", headers={"Content-Type": "text/xml"}, golden=True
    ),
    Case("XML with a BOM", file="mms_mo_bom.xml", golden=True),
    Case(
        "UTF-16 XML",
        file="mms_mo_utf16.xml",
        headers={"content-type": "text/xml; charset=utf-16"},
        golden=True,
    ),
    # Content types: the same record as with a plain header.
    *(
        Case(
            f"content type: {label}",
            body=body,
            headers=headers,
            golden="mms_mo_xml" if MO_XML in body else "mms_mo",
        )
        for label, (body, headers) in FORMS.items()
    ),
    Case("twenty files, XML", body=files_in(TWENTY), headers=XML, fields={"media": TWENTY_MEDIA}),
    Case(
        "twenty files, JSON",
        body=mo_json(content=[{"file": u} for u in TWENTY]),
        headers=JSON,
        fields={"media": TWENTY_MEDIA},
    ),
    Case(
        "default country makes bare national numbers E.164",
        body=postback("<from>4082257140</from>"),
        headers=XML,
        settings={"default_country": "US"},
        # raw.from: test_providers.py
        fields={"from": "+14082257140", "owner": "28444"},
    ),
    Case(
        "minimal",
        body=postback(),
        headers=XML,
        fields={"media": [], "from": None, "occurred_at": None},
    ),
    Case("empty content", body=postback("<content/>"), headers=XML, fields={"media": []}),
    Case(
        "content with only a comment, blank subject",
        body=postback(
            "<content>\n  <!-- none -->\n</content>", "<message-subject>  </message-subject>"
        ),
        headers=XML,
        fields={"media": [], "subject": None},
    ),
    Case(
        "empty file elements are skipped",
        body=postback(
            "<content><file/><file>  </file><file>https://x.example/a.gif</file></content>"
        ),
        headers=XML,
        fields={"media": [Media("https://x.example/a.gif", filename="a.gif", status="provider")]},
    ),
    Case(
        "XML attributes on a file are kept",
        body=postback(
            '<content><file type="image/png" size="812">https://x.example/b.png</file></content>'
        ),
        headers=XML,
        fields={
            "media": [Media("https://x.example/b.png", filename="b.png", status="provider")],
            "attributes": including({"content.0.@type": "image/png", "content.0.@size": "812"}),
        },
    ),
    Case(
        "prefixed namespaces match on local names",
        body='<s:postback xmlns:s="urn:sinch:mms"><s:origin>MMS_MO</s:origin>'
        "<s:tracking-id>MMS_MO_t1</s:tracking-id><s:to>28444</s:to>"
        '<t:from xmlns:t="urn:other">+14082257140</t:from></s:postback>',
        headers=XML,
        fields={"owner": "28444", "from": "+14082257140"},
    ),
    Case(
        "namespace name with a space (not expat's separator)",
        body='<postback xmlns="urn:example sinch">' + REQUIRED + "</postback>",
        headers=XML,
        fields={"owner": "28444"},
    ),
    Case(
        "character references",
        body=postback("<message-subject>&#x1F600; caf&#233; &amp; more</message-subject>"),
        headers=XML,
        fields={"subject": "😀 café & more"},
    ),
    Case(
        "CDATA markup is text",
        body=postback("<message-subject><![CDATA[  <b>bold</b> ]]></message-subject>"),
        headers=XML,
        fields={"subject": "<b>bold</b>"},
    ),
    Case(
        "unknown elements, XML attributes, repeats and stray text are kept",
        body='<postback version="2">'
        + REQUIRED
        + "stray<tag>a</tag><tag>b</tag><x><y/></x></postback>",
        headers=XML,
        fields={
            "attributes": including(
                {"@version": "2", "#text": "stray", "tag": '["a","b"]', "x.y": ""}
            )
        },
    ),
    Case(
        "XML attributes on field elements are kept beside the field",
        body='<postback><origin v="2">MMS_MO</origin><tracking-id>MMS_MO_t1</tracking-id>'
        '<to type="shortcode"> 28444 </to><carrier country="US">T-Mobile</carrier></postback>',
        headers=XML,
        fields={
            "owner": "28444",
            "attributes": including(
                {
                    "origin.@v": "2",
                    "to.@type": "shortcode",
                    "carrier": "T-Mobile",
                    "carrier.@country": "US",
                    "origin": "MMS_MO",
                }
            ),
        },
    ),
    Case(
        "declaration, processing instruction, padded timestamp",
        body='<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<?proc x?>\n'
        + postback("<timestamp> 2024-05-17T18:44:02Z </timestamp>"),
        headers=XML,
        fields={"occurred_at": datetime(2024, 5, 17, 18, 44, 2, tzinfo=UTC)},
    ),
    Case(
        "from with plus needs no raw copy",
        body=mo_json(**{"from": "+14082257140"}, message_subject="Ünïcödé ✓ 🎉"),
        headers=JSON,
        fields={
            "from": "+14082257140",
            "subject": "Ünïcödé ✓ 🎉",
            "attributes": including({"raw.from": ABSENT}),
        },
    ),
    Case(
        "extra keys on a JSON file are kept",
        body=mo_json(content=[{"file": "https://x.example/c.mp4", "content-type": "video/mp4"}]),
        headers=JSON,
        fields={
            "media": [Media("https://x.example/c.mp4", filename="c.mp4", status="provider")],
            "attributes": including({"content.0.content-type": "video/mp4"}),
        },
    ),
    Case("content null", body=mo_json(content=None), headers=JSON, fields={"media": []}),
    Case("content empty", body=mo_json(content=[]), headers=JSON, fields={"media": []}),
    Case(
        "numeric operator-id, nulls",
        body=mo_json(operator_id=31002, keyword=None, message_subject=None),
        headers=JSON,
        fields={
            "subject": None,
            "attributes": including({"operator-id": "31002", "keyword": ABSENT}),
        },
    ),
    Case(
        "10DLC with plus, numeric tracking-id",
        body=mo_json(to="+19195550123", tracking_id=9876543210),
        headers=JSON,
        fields={"owner": "+19195550123", "provider_message_id": "9876543210"},
    ),
    # Declared encodings expat or Python decodes.
    *(
        declared(encoding, subject)
        for encoding, subject in [
            ("UTF-8", "Ünïcödé ✓"),
            ("latin1", "café"),
            ("US-ASCII", "cafe"),
            ("windows-1252", "€ café"),
            ("ISO-8859-15", "€ œuvre"),
            ("Shift_JIS", "東京タワー"),
            ("GB18030", "你好 🎉"),
        ]
    ),
    Case("XXE", file="xxe.xml", headers=XML, refused=("xml_doctype_forbidden", 400)),
    Case("lol", file="billion_laughs.xml", headers=XML, refused=("xml_doctype_forbidden", 400)),
    refused(
        "billion laughs in UTF-16",
        BILLION_LAUGHS.decode()
        .replace('<?xml version="1.0"?>', '<?xml version="1.0" encoding="UTF-16"?>')
        .encode("utf-16"),
        XML,
        "xml_doctype_forbidden",
    ),
    Case("ext DTD", file="external_dtd.xml", refused=("xml_doctype_forbidden", 400)),
    refused("bare DTD", "<!DOCTYPE postback>" + postback(), XML, "xml_doctype_forbidden"),
    refused("undefined entity", postback("<keyword>&ent;</keyword>"), XML, "invalid_xml"),
    refused("undeclared prefix", postback("<s:keyword>k</s:keyword>"), XML, "invalid_xml"),
    refused(
        # A lone high surrogate where "K" was: expat alone would pair it with the "<" after it.
        "UTF-16 with a lone surrogate",
        postback("<keyword>K</keyword>").encode("utf-16").replace(b"K\0", b"\0\xd8"),
        XML,
        "invalid_xml",
    ),
    refused("truncated XML", MO_XML[:-20], XML, "invalid_xml"),
    refused("two documents", postback() + "<postback/>", XML, "invalid_xml"),
    refused("empty body as XML", b"", XML, "invalid_xml"),
    refused("JSON body labelled XML", MO_JSON, XML, "invalid_xml"),
    refused("XML body labelled JSON", MO_XML, JSON, "invalid_json"),
    refused("truncated JSON", MO_JSON[:-5], JSON, "invalid_json"),
    refused("empty body", b"", {}, "unsupported_media_type"),
    refused("form body", b"origin=MMS_MO&to=28444", {}, "unsupported_media_type"),
    refused("JSON array sniffed", b"[1]", {}, "unsupported_media_type"),
    refused("JSON array", b"[1]", JSON, "invalid_event"),
    refused("root", b"<response><origin>MMS_MO</origin></response>", XML, "invalid_event"),
    refused("deep XML", deep_xml(40), XML, "xml_too_deep"),
    refused("deep JSON", b"{" + b'"a":{' * 40 + b"}" * 41, JSON, "json_too_deep"),
    refused(
        "delivery report origin",
        postback().replace("MMS_MO<", "MMS_MT_DR<"),
        XML,
        "unknown_event_type",
    ),
    refused("origin lower case", mo_json(origin="mms_mo"), JSON, "unknown_event_type"),
    refused("no origin", mo_json(origin=None), JSON, "missing_field"),
    refused("empty tracking-id", mo_json(tracking_id=""), JSON, "missing_field"),
    refused(
        "no tracking-id",
        "<postback><origin>MMS_MO</origin><to>28444</to></postback>",
        XML,
        "missing_field",
    ),
    refused("no to", mo_json(to=None), JSON, "missing_field"),
    refused("two to elements", postback("<to>28445</to>"), XML, "invalid_field"),
    refused(
        "to with children",
        "<postback><origin>MMS_MO</origin><tracking-id>t</tracking-id><to><n>1</n></to></postback>",
        XML,
        "invalid_field",
    ),
    refused("to as a list", mo_json(to=["28444"]), JSON, "invalid_field"),
    refused("content a number", mo_json(content=5), JSON, "invalid_field"),
    refused("content nested list", mo_json(content=[["u"]]), JSON, "invalid_field"),
    refused("file a float", mo_json(content=[{"file": 1.5}]), JSON, "invalid_field"),
    refused("bad timestamp", mo_json(timestamp="03/02/2014 11:19"), JSON, "invalid_time"),
    refused(
        "timestamp before datetime's range",
        postback("<timestamp>0001-01-01T00:00:00+01:00</timestamp>"),
        XML,
        "invalid_time",
    ),
    # Hostile input (issue 9): each failed on the code before commit b25f525.
    refused(
        "blank owner", harness.variant(MODULE, "mms_mo.json", {"to": "  "}), JSON, "missing_field"
    ),
    refused(
        "record separator in id",
        harness.variant(MODULE, "mms_mo.json", {"tracking-id": "t\x1e1"}),
        JSON,
        "invalid_id",
    ),
    *(
        Case(
            f"long XML {what} refused at the first",
            body=xml,
            headers=XML,
            refused=("name_too_long", 413),
        )
        for what, xml in [
            ("element name", b"<postback><" + b"n" * 129 + b">x</" + b"n" * 129 + b"></postback>"),
            ("attribute name", b"<postback><to a" + b"n" * 129 + b'="1">28444</to></postback>'),
        ]
    ),
    # Skycore's dialect (accounts from Skycore's platform): its documented MO, wrapped or not.
    Case("Skycore's MO", file="skycore_v13_mms_mo.xml", headers=XML, golden=True),
    Case(
        "Skycore's MO before July 2014, in a NOTIFICATION",
        file="skycore_v13_2014early_mms_mo_notification_wrapped.xml",
        headers=XML,
        golden=True,
    ),
    Case(
        "the documented MO in Skycore's dialect gives the same record",
        file="skycore_mms_mo.written.xml",
        headers=XML,
        golden="mms_mo_xml",
    ),
    Case(
        "the same in a NOTIFICATION",
        body=notified(SKYCORE_MO),
        headers=XML,
        golden="mms_mo_xml",
    ),
    Case(
        "the same as the form field xml",
        file="skycore_mms_mo.written.form",
        headers=FORM,
        golden="mms_mo_xml",
    ),
    Case(
        "the same as the form field XML",
        body=form(XML=SKYCORE_MO),
        headers={"Content-Type": "application/x-www-form-urlencoded; charset=UTF-8"},
        golden="mms_mo_xml",
    ),
    Case(
        "the form's other fields are kept",
        body=form(account="acme", Xml=SKYCORE_MO, sent=""),
        headers=FORM,
        fields={
            "owner": "28444",
            "attributes": including({"form.account": "acme", "form.sent": "", "form.Xml": ABSENT}),
        },
    ),
    Case(
        "in a form, the text is UTF-8 whatever the XML declares",
        body=form(
            xml='<?xml version="1.0" encoding="ISO-8859-1"?>'
            + SKYCORE_MO.replace("<SUBJECT></SUBJECT>", "<SUBJECT>café ✓</SUBJECT>")
        ),
        headers=FORM,
        fields={"subject": "café ✓"},
    ),
    Case(
        "names in any case",
        body="<PostBack><Origin>MMS_MO</Origin><TrackingId>t1</TrackingId><To>28444</To>"
        "<Subject>Hi</Subject><Content><File>https://x.example/a.gif</File></Content>"
        "<Spid>0001470</Spid></PostBack>",
        headers=XML,
        fields={
            "provider_message_id": "t1",
            "subject": "Hi",
            "media": [Media("https://x.example/a.gif", filename="a.gif", status="provider")],
            "attributes": including({"operator-id": "0001470"}),
        },
    ),
    Case(
        "unknown names are kept as sent",
        body=notified(SKYCORE_MO.replace("<CODE>", "<HISTORYID>455811</HISTORYID><CODE>")),
        headers=XML,
        fields={"attributes": including({"HISTORYID": "455811", "historyid": ABSENT})},
    ),
    Case(
        "what a wrapping POSTBACK holds beside its NOTIFICATION is kept",
        body=notified(SKYCORE_MO).replace(
            "<POSTBACK>",
            f'<POSTBACK xmlns:xsi="{XSI}" xsi:noNamespaceSchemaLocation="{SKYCORE_XSD}">',
            1,
        ),
        headers=XML,
        fields={"attributes": including({"postback.@noNamespaceSchemaLocation": SKYCORE_XSD})},
    ),
    Case(
        "two NOTIFICATIONs, two records",
        body=notified(report("N101"), report("N102")),
        headers=XML,
        fields=[
            {"event_type": "sent", "provider_message_id": "TU1TXzU5Nzg3OQ=="},
            {"event_type": "delivered", "provider_message_id": "TU1TXzU5Nzg3OQ=="},
        ],
    ),
    Case(
        "files of content outside a postback are no media",
        body=postback("<x><content><file>https://x.example/a.gif</file></content></x>"),
        headers=XML,
        settings={"max_media": 0},
        fields={
            "media": [],
            "attributes": including({"x.content.file": "https://x.example/a.gif"}),
        },
    ),
    # MT reports, in either dialect.
    *(
        Case(f"report {file}", file=file, headers=XML, golden=True)
        for file in [
            "skycore_v13_mms_mt_N101_binary.xml",
            "skycore_v13_mms_mt_N101_xhtml.xml",
            "skycore_v13_mms_mt_N102_binary.xml",
            "skycore_v13_mms_mt_N202_xhtml_labelled_N102.xml",
            "skycore_v13_mms_mt_E101.xml",
            "skycore_v13_mms_mt_E102.xml",
            # No FROM, so no number of ours: keyed by the tracking id.
            "skycore_2014mar_mms_mt_N102_binary_no_from.xml",
            "sinch_xml_mms_mt_N101_binary.xml",
            "sinch_xml_mms_mt_N101_html.xml",
            "sinch_xml_mms_mt_N102_binary.xml",
            "sinch_xml_mms_mt_N102_html.xml",
            "sinch_xml_mms_mt_E101.xml",
            "sinch_xml_mms_mt_E102.xml",
            "sinch_xml_ddm_N501.xml",
            "sinch_xml_ddm_N502.xml",
        ]
    ),
    Case("Sinch's XML MO example", file="sinch_xml_mms_mo.xml", headers=XML, golden=True),
    Case("Sinch's JSON MO example", file="sinch_json_mms_mo_N401.json", headers=JSON, golden=True),
    Case(
        "Skycore's N102 in Sinch's names gives the same record",
        body=in_sinch_names(SKYCORE_N102),
        headers=XML,
        golden="skycore_v13_mms_mt_N102_binary",
    ),
    Case(
        "a report as JSON",
        body=mo_json(origin="MMS_MT", code="N102", **{"from": "28444"}, to="12399471613"),
        headers=JSON,
        fields={"event_type": "delivered", "owner": "28444", "to": ["+12399471613"]},
    ),
    Case(
        "a report's national numbers with a default country",
        body=report("N101").replace("16502424956", "6502424956"),
        headers=XML,
        settings={"default_country": "US"},
        fields={"owner": "60856", "to": ["+16502424956"]},
    ),
    Case(
        "an all-digit tracking id without from keys the report as sent",
        body="<POSTBACK><ORIGIN>MMS_MT</ORIGIN><CODE>N101</CODE><TO>16502424956</TO>"
        "<TRACKINGID>14155550100</TRACKINGID></POSTBACK>",
        headers=XML,
        fields={
            "owner": "14155550100",
            "from": None,
            "provider_message_id": "14155550100",
            "attributes": including({"raw.owner": ABSENT}),
        },
    ),
    *(
        Case(
            f"{code} with status {status!r}",
            body=report(code, f"<STATUS>{status}</STATUS>", "<STATUSDETAILS>why</STATUSDETAILS>"),
            headers=XML,
            fields={
                "event_type": event_type,
                "error_code": code if event_type == "failed" else None,
                "error_description": "why" if event_type == "failed" else None,
            },
        )
        for code, status, event_type in [
            ("N101", "Message Sent", "sent"),
            ("N101", "Message Failed", "failed"),
            ("N102", "Message Sent/Delivered", "delivered"),
            ("N102", "Message Sent/Expired", "failed"),
            ("N102", "Message Sent/Rejected", "failed"),
            ("N202", "Message Sent/Failed", "failed"),
            ("N103", "", "failed"),
            ("E102", "Message Sent/Not Supported", "failed"),
            ("E102", "Message,Sent/Expired", "failed"),
            ("E202", "Message Sent/Failed", "failed"),
            ("N502", "Message Sent/Delivered", "delivered"),
            ("E501", "Message Failed", "failed"),
            # Only the documented failure statuses: "fail" in a status is no failure.
            ("N102", "Delivered via SMS failover", "delivered"),
        ]
    ),
    # Refused: what reports on no message, other origins, and forms without a postback.
    *(
        Case(f"refused: {file}", file=file, headers=XML, refused=("unknown_event_type", 400))
        for file in [
            "skycore_v13_savemms_N003.xml",
            "skycore_v13_savemms_E002.xml",
            "sinch_xml_savemms_N003.xml",
            "sinch_xml_savemms_E002.xml",
            "skycore_v13_sms_mo.xml",
        ]
    ),
    Case(
        "Skycore's 2012 NOTIFICATION alone",
        file="skycore_2012_batched_notification_mms_mt_N102_binary.xml",
        headers=XML,
        refused=("invalid_event", 400),
    ),
    refused(
        "Skycore's 2012 batch: the fields in a BODY",
        "<POSTBACK>"
        + payload(MODULE, "skycore_2012_batched_notification_mms_mt_N102_binary.xml").decode()
        + "</POSTBACK>",
        XML,
        "missing_field",
    ),
    refused("SMS MT report", report("N202", origin="SMS_MT"), XML, "unknown_event_type"),
    refused("unknown MT code", report("N999"), XML, "unknown_event_type"),
    refused("MT code in lower case", report("n102"), XML, "unknown_event_type"),
    refused("MT without code", report(""), XML, "missing_field"),
    refused("MT without tracking id", report("N102").replace(TRACKED, ""), XML, "missing_field"),
    refused(
        "MT with neither from nor a tracking id to key it",
        mo_json(origin="MMS_MT", code="N101", tracking_id="  "),
        JSON,
        "missing_field",
    ),
    refused("TO and to", report("N101", "<to>16502424957</to>"), XML, "invalid_field"),
    refused(
        "MT bad timestamp", report("N101", "<TIMESTAMP>07/06/2012</TIMESTAMP>"), XML, "invalid_time"
    ),
    refused("an empty NOTIFICATION", "<POSTBACK><NOTIFICATION/></POSTBACK>", XML, "invalid_event"),
    refused(
        "a NOTIFICATION of text",
        "<POSTBACK><NOTIFICATION>N401</NOTIFICATION></POSTBACK>",
        XML,
        "invalid_event",
    ),
    refused("form without the xml field", form(XMLS=SKYCORE_MO), FORM, "missing_field"),
    refused("form with an empty xml field", form(xml=""), FORM, "missing_field"),
    refused("form with xml and XML", form(xml=SKYCORE_MO, XML=SKYCORE_MO), FORM, "duplicate_field"),
    refused(
        "form with xml twice", form(xml="<a/>") + "&" + form(xml="<a/>"), FORM, "duplicate_field"
    ),
    refused("form with JSON in the xml field", form(xml=MO_JSON.decode()), FORM, "invalid_xml"),
    refused("form not UTF-8", b"xml=%FF", FORM, "invalid_form"),
    refused(
        "form of a DOCTYPE",
        form(xml=payload(MODULE, "xxe.xml").decode()),
        FORM,
        "xml_doctype_forbidden",
    ),
    Case(
        "more NOTIFICATIONs than max_events",
        body=notified(SKYCORE_MO, SKYCORE_MO, SKYCORE_MO),
        headers=XML,
        settings={"max_events": 2},
        refused=("too_many_events", 413),
    ),
    Case(
        "more files in a NOTIFICATION than max_media",
        body=notified(SKYCORE_MO),
        headers=XML,
        settings={"max_media": 2},
        refused=("too_many_media", 413),
    ),
]

test_table = harness.table_test(NAME, TABLE)


def test_event_ids_come_from_the_tracking_id() -> None:
    for body, headers in [(MO_XML, XML), (payload(MODULE, "mms_mo_bom.xml"), {})]:
        [event] = translate(body, headers)
        assert event.event_id == event_id(NAME, "MMS_MO_iLnCRrL6")
    [event] = translate(MO_JSON, JSON)
    assert event.event_id == event_id(NAME, "MMS_MO_pQ83xZk1")


def test_report_ids_come_from_the_tracking_id_code_and_time() -> None:
    tracking_id = "TU1TXzU5Nzg3OQ=="
    [sent] = translate(payload(MODULE, "skycore_v13_mms_mt_N101_binary.xml"), XML)
    [delivered] = translate(payload(MODULE, "skycore_v13_mms_mt_N102_binary.xml"), XML)
    assert sent.event_id == event_id(
        NAME, "MMS_MT", tracking_id, "N101", "2012-06-07T07:27:29-05:00"
    )
    assert delivered.event_id == event_id(
        NAME, "MMS_MT", tracking_id, "N102", "2012-06-07T07:27:34-05:00"
    )
    # E101 has no time; its id is the tracking id's and the code's.
    [failed] = translate(payload(MODULE, "skycore_v13_mms_mt_E101.xml"), XML)
    assert failed.event_id == event_id(NAME, "MMS_MT", "TU1TXzU5Nzg3Nw==", "E101", None)


def test_content_type_from_headers_when_the_callback_has_none() -> None:
    route = translate.route()
    raw = Callback(MO_XML, {"content-type": "text/xml"}, RECEIVED_AT)
    [event] = route.provider.translate(raw, route.context)
    assert event.owner == "28444"


def test_300k_files_are_refused_at_the_first_past_the_media_budget() -> None:
    # b25f525 translated all 300,000 (10.8 MB) in 2.4 s into one huge record; now 7 ms.
    body = postback("<content>" + "<file>https://x.example/a.jpg</file>" * 300_000 + "</content>")
    refused = translate.refusal(body, XML)
    assert (refused.code, refused.status) == ("too_many_media", 413)
    # Refused while parsing, not after: cut in half (no longer well-formed XML), the body is
    # still too_many_media rather than invalid_xml, so the parser never read as far as the cut.
    assert translate.refusal(body[: len(body) // 2], XML).code == "too_many_media"


def test_budgets_are_checked_while_parsing_however_the_body_is_split() -> None:
    # Files in several <content>s count together; notifications count as they open: cut in
    # half (no longer well-formed), such bodies are still refused by their budget.
    budget = harness.default(NAME, "max_media")
    split = postback(*("<content><file>https://x.example/a.jpg</file></content>",) * (2 * budget))
    assert translate.refusal(split[: len(split) * 3 // 4], XML).code == "too_many_media"
    events = harness.default(NAME, "max_events")
    many = notified(*(SKYCORE_MO,) * (2 * events))
    assert translate.refusal(many[: len(many) * 3 // 4], XML).code == "too_many_events"


def test_media_budget_edge_in_either_form() -> None:
    budget = harness.default(NAME, "max_media")
    urls = [f"{CONTENT}/MMS_MO_t1/part{i}.jpg" for i in range(budget + 1)]
    for at_budget in (files_in(urls[:budget]), mo_json(content=urls[:budget])):
        [event] = translate(at_budget)
        assert [m.uri for m in event.media] == urls[:budget]
    for over in (files_in(urls), mo_json(content=urls)):
        refused = translate.refusal(over, {})
        assert (refused.code, refused.status) == ("too_many_media", 413)


def with_elements(count: int, attributes: int = 0) -> str:
    """A postback of `count` elements (it and its three required fields included)."""
    attrs = "".join(f' a{i}="v"' for i in range(attributes))
    return f"<postback{attrs}>{REQUIRED}" + "<x/>" * (count - 4) + "</postback>"


def test_a_form_and_its_postback_share_one_element_budget() -> None:
    # The form's fields and the document's elements are one callback's: one budget.
    budget = harness.default(NAME, "max_elements")
    document = with_elements(budget - 3)
    fields = {f"f{i}": "" for i in range(3)}
    [event] = translate(form(xml=document, **fields), FORM)
    assert event.attributes["form.f0"] == ""
    refused = translate.refusal(form(xml=document, extra="", **fields), FORM)
    assert (refused.code, refused.status) == ("too_many_elements", 413)


def test_element_budget_edge_counts_elements_and_attributes() -> None:
    budget = harness.default(NAME, "max_elements")
    [event] = translate(with_elements(budget), XML)
    assert json.loads(event.attributes["x"]) == [""] * (budget - 4)
    [event] = translate(with_elements(budget - 1, attributes=1), XML)
    assert event.attributes["@a0"] == "v"
    for over in (with_elements(budget + 1), with_elements(budget - 1, attributes=2)):
        refused = translate.refusal(over, XML)
        assert (refused.code, refused.status) == ("too_many_elements", 413)


def test_attributes_and_namespace_declarations_past_the_budget_are_refused_unread() -> None:
    # Expat reads a start tag whole before reporting it, and namespace declarations reach no
    # handler at all: 1.1 M attributes took 2.7 s, 500,000 declarations 0.9 s (and passed).
    over = harness.default(NAME, "max_elements") + 1
    attributes = " ".join(f'a{i}="v"' for i in range(over))
    declarations = " ".join(f'xmlns:p{i}="urn:p{i}"' for i in range(over))
    for start_tag in (f"<postback {attributes}>", f"<postback {declarations}>"):
        refused = translate.refusal(f"{start_tag}{REQUIRED}</postback>", XML)
        assert (refused.code, refused.status) == ("too_many_elements", 413)


def rss_bytes() -> int:
    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def test_distinct_element_names_do_not_accumulate_across_callbacks() -> None:
    # lxml (b25f525) kept every element name in a per-thread dictionary that is never freed:
    # these 300 callbacks grew RSS by ~140 MB, and after 545 of them every later postback was
    # refused as invalid_xml. An expat parser, and the names it read, last one document.
    pad = "n" * 115  # names of ~125 characters, under MAX_NAME_CHARS
    before = rss_bytes()
    for i in range(300):
        # 1,000 names never seen before: 125 KB per callback, 37 MB in all.
        [event] = translate(postback(*(f"<x{i}_{j}{pad}/>" for j in range(1000))), XML)
        assert len(event.attributes) == 1001  # the 1,000 names and origin
    assert rss_bytes() - before < 16 * 2**20
    # Postbacks naming elements never seen before still parse.
    [event] = translate(payload(MODULE, "mms_mo_namespaced.xml"), XML)
    assert event.attributes["carrier.mcc"] == "310"


def test_unknown_declared_encoding_is_refused_without_growing_the_codec_cache() -> None:
    cached = set(encodings._cache)
    for _ in range(100):
        name = f"x-{uuid.uuid4().hex}"
        refused = translate.refusal(f'<?xml version="1.0" encoding="{name}"?>{postback()}', XML)
        assert (refused.code, refused.status) == ("unsupported_encoding", 400)
        assert name in refused.detail
    assert set(encodings._cache) == cached
