"""All SOAP XML of the mktows ``syncMultipleLeads`` call, for the client and for the emulator.

Pure functions: no network and no file I/O beyond reading the bundled XSD/WSDL (lazily, once).
lxml and xmlschema are imported inside the functions that need them, so importing this module is
cheap (the CLI must start quickly).

Client side: :func:`build_request` (signed, XSD-validated envelope), :func:`parse_response`
(statuses, or :class:`~reconcile.remote.soap.fault.SoapFault` / :class:`~reconcile.errors.ResponseError`),
:func:`redact` (for debug logs). The emulator's server half is `reconcile.emulator.soap_api`; the
vocabulary both share is `wire`.

Every document is parsed with :func:`parse_xml_safely`: no DTDs, no entities, no network, bounded
size and depth.  XSD validation never follows ``xsi:schemaLocation`` hints.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import threading
from datetime import datetime, timedelta, timezone
from typing import Any, Iterable, Sequence

from reconcile.core.records import LeadRecord, SyncStatus
from reconcile.errors import ExitStatus, ReconcileError, ResponseError
from reconcile.remote.soap import codes
from reconcile.remote.soap.fault import SoapFault
from reconcile.remote.soap.wire import NS_MKTOWS, NS_SOAP, NS_XSI
from reconcile.remote.soap.wire import MKTOWS as _MKTOWS, XML_INCOMPATIBLE as _XML_INCOMPATIBLE
from reconcile.remote.soap.wire import one_line as _one_line, resource_bytes as _resource_bytes
from reconcile.remote.soap.wire import shared_validator, tag_name as _tag_name
from reconcile.remote.soap.wire import TAG_AUTH, TAG_BODY, TAG_ENVELOPE, TAG_FAULT, TAG_HEADER, TAG_PARAMS, TAG_SUCCESS
from reconcile.core.safetext import visible

__all__ = [
    "NS_SOAP", "NS_MKTOWS", "NS_XSI", "SOAP_ACTION", "CONTENT_TYPE", "MAX_RESPONSE_BYTES",
    "EnvelopeInvalid", "LeadRecord", "SyncStatus",
    "sign", "w3c_timestamp", "build_request", "resign", "redact", "parse_response", "parse_xml_safely",
]

SOAP_ACTION = "http://www.marketo.com/mktows/syncMultipleLeads"
CONTENT_TYPE = "text/xml; charset=utf-8"
MAX_RESPONSE_BYTES = 16 * 1024 * 1024

SYNC_STATUSES = ("CREATED", "UPDATED", "FAILED")

_XML_DECLARATION = b'<?xml version="1.0" encoding="UTF-8"?>\n'
_XSI_NIL = "{%s}nil" % NS_XSI


class EnvelopeInvalid(ReconcileError):
    """We were about to send (or answer with) XML that breaks the mktows schema: a bug, never sent."""

    exit_status = ExitStatus.ERROR


# --------------------------------------------------------------------------------------------------
# Lazily loaded machinery (lxml, xmlschema, the bundled XSD and WSDL)

_lock = threading.Lock()
_schema_cache: Any = None


def _etree():
    from lxml import etree

    return etree


def compiled_schema():
    """The mktows XMLSchema, built once and shared (building it costs more than a validation);
    validation is thread-safe."""
    global _schema_cache
    if _schema_cache is None:
        with _lock:
            if _schema_cache is None:
                import xmlschema

                text = _resource_bytes("mktows.xsd").decode("utf-8")
                _schema_cache = xmlschema.XMLSchema(text, allow="none", defuse="always")
    return _schema_cache


def _first_schema_error(elem) -> Any:
    """The first XSD violation of a global mktows element (lxml or ElementTree), or None."""
    return next(compiled_schema().iter_errors(elem, use_location_hints=False), None)


def _describe_schema_error(error: Any, limit: int = 240) -> str:
    reason = getattr(error, "reason", None) or getattr(error, "message", None) or str(error)
    path = getattr(error, "path", None)
    text = reason if not path else f"{reason} (at {path.replace(_MKTOWS, 'ns1:')})"
    return _one_line(text, limit)


# --------------------------------------------------------------------------------------------------
# Signing


def sign(encryption_key: str, request_timestamp: str, user_id: str) -> str:
    """requestSignature: lower-case hex HMAC-SHA1 keyed by the encryption key over timestamp + user."""
    message = (request_timestamp + user_id).encode("utf-8")
    return hmac.new(encryption_key.encode("utf-8"), message, hashlib.sha1).hexdigest()


def w3c_timestamp(now: datetime | None = None) -> str:
    """W3C date-time with a numeric offset, seconds precision: ``2013-08-01T18:22:30-07:00``.

    ``now`` must be timezone-aware; the default is the current time in UTC (``+00:00``).
    """
    if now is None:
        now = datetime.now(timezone.utc)
    offset = now.utcoffset()
    if offset is None:
        raise ValueError("w3c_timestamp needs a timezone-aware datetime")
    if offset % timedelta(minutes=1):
        raise ValueError(f"UTC offset {offset} is not a whole number of minutes")
    minutes = int(offset.total_seconds()) // 60
    sign_char = "-" if minutes < 0 else "+"
    hours, mins = divmod(abs(minutes), 60)
    return f"{now.strftime('%Y-%m-%dT%H:%M:%S')}{sign_char}{hours:02d}:{mins:02d}"


# --------------------------------------------------------------------------------------------------
# Client: request


def leaf(etree, parent, tag: str, text: str | None):
    el = etree.SubElement(parent, tag)
    el.text = text
    el.tail = "\n"
    return el


def container(etree, parent, tag: str, nsmap: dict | None = None):
    el = etree.SubElement(parent, tag, nsmap=nsmap) if nsmap else etree.SubElement(parent, tag)
    el.text = "\n"
    el.tail = "\n"
    return el


def checked_text(value: Any, what: str, *, optional: bool = True) -> str | None:
    if value is None:
        if optional:
            return None
        raise EnvelopeInvalid(f"invalid mktows envelope (not sent): {what} is missing")
    if not isinstance(value, str):
        raise EnvelopeInvalid(
            f"invalid mktows envelope (not sent): {what} must be text, not {type(value).__name__} {value!r}")
    bad = _XML_INCOMPATIBLE.search(value)
    if bad:
        raise EnvelopeInvalid(
            f"invalid mktows envelope (not sent): {what} contains U+{ord(bad.group()):04X}, "
            "a character XML 1.0 cannot carry")
    return value


def build_request(records: Sequence[LeadRecord], *, user_id: str, encryption_key: str, timestamp: str,
                  dedup_enabled: bool = True) -> bytes:
    """The signed syncMultipleLeads envelope (UTF-8 bytes), in the shape of Marketo's own example.

    Header and body are validated against the bundled XSD before returning; anything invalid
    (unknown ForeignSysType, Id out of xs:int range, non-text values, characters XML cannot carry)
    raises :class:`EnvelopeInvalid` and nothing is returned. The batch size and the presence of a
    key in each record are not checked here (Marketo answers those per record or with a fault).
    """
    etree = _etree()
    envelope = signed_envelope(etree, user_id=user_id, encryption_key=encryption_key, timestamp=timestamp)
    if not isinstance(dedup_enabled, bool):
        raise EnvelopeInvalid(f"invalid mktows envelope (not sent): dedupEnabled must be a bool, "
                              f"not {dedup_enabled!r}")
    body = container(etree, envelope, TAG_BODY)
    params = container(etree, body, TAG_PARAMS)
    record_list = container(etree, params, "leadRecordList")
    for index, record in enumerate(records):
        where = f"leadRecord[{index + 1}]"
        if not isinstance(record, LeadRecord):
            raise EnvelopeInvalid(f"invalid mktows envelope (not sent): {where} is a "
                                  f"{type(record).__name__}, not a LeadRecord")
        rec = container(etree, record_list, "leadRecord")
        if record.lead_id is not None:
            if isinstance(record.lead_id, bool) or not isinstance(record.lead_id, int):
                raise EnvelopeInvalid(f"invalid mktows envelope (not sent): {where}/Id must be an int, "
                                      f"not {record.lead_id!r}")
            leaf(etree, rec, "Id", str(record.lead_id))
        for tag, value in (("Email", record.email), ("ForeignSysPersonId", record.foreign_sys_person_id),
                           ("ForeignSysType", record.foreign_sys_type)):
            if value is not None:
                leaf(etree, rec, tag, checked_text(value, f"{where}/{tag}"))
        if record.attributes:
            attr_list = container(etree, rec, "leadAttributeList")
            for name, value in record.attributes:
                what = f"{where} attribute {name!r}"
                attribute = container(etree, attr_list, "attribute")
                leaf(etree, attribute, "attrName", checked_text(name, f"{what} name", optional=False))
                leaf(etree, attribute, "attrValue", checked_text(value, f"{what} value") or None)
    leaf(etree, params, "dedupEnabled", "true" if dedup_enabled else "false")

    data = _XML_DECLARATION + etree.tostring(envelope, encoding="UTF-8") + b"\n"
    validate_outgoing(data, (TAG_HEADER + "/" + TAG_AUTH, TAG_BODY + "/" + TAG_PARAMS))
    return data


def signed_envelope(etree, *, user_id: str, encryption_key: str, timestamp: str):
    """The Envelope element with its signed AuthenticationHeader, for the Body to follow."""
    checked_text(user_id, "mktowsUserId", optional=False)
    checked_text(timestamp, "requestTimestamp", optional=False)
    if not isinstance(encryption_key, str):
        raise EnvelopeInvalid("invalid mktows envelope (not sent): the encryption key must be text")
    envelope = etree.Element(TAG_ENVELOPE, nsmap={"SOAP-ENV": NS_SOAP, "ns1": NS_MKTOWS})
    envelope.text = "\n"
    header = container(etree, envelope, TAG_HEADER)
    auth = container(etree, header, TAG_AUTH)
    leaf(etree, auth, "mktowsUserId", user_id)
    leaf(etree, auth, "requestSignature", sign(encryption_key, timestamp, user_id))
    leaf(etree, auth, "requestTimestamp", timestamp)
    return envelope


_HEADER_START = b"<SOAP-ENV:Header>"
_HEADER_END = b"</SOAP-ENV:Header>"


def resign(envelope: bytes, *, user_id: str, encryption_key: str, timestamp: str) -> bytes:
    """`envelope` (made by :func:`build_request`) signed again for `timestamp`: byte for byte what
    build_request makes for that timestamp. The signature covers the timestamp and the user, not the
    body, so an envelope that waited, or is sent again, keeps its validated body and gets a new
    header, itself validated against the XSD; rebuilding would validate the whole body again."""
    etree = _etree()
    start, end = envelope.find(_HEADER_START), envelope.find(_HEADER_END)
    if not envelope.startswith(_XML_DECLARATION) or start < 0 or end < start:  # pragma: no cover - we built it
        raise EnvelopeInvalid("invalid mktows envelope: no SOAP header to sign again")
    signed = _XML_DECLARATION + etree.tostring(
        signed_envelope(etree, user_id=user_id, encryption_key=encryption_key, timestamp=timestamp),
        encoding="UTF-8") + b"\n"
    validate_outgoing(signed, (TAG_HEADER + "/" + TAG_AUTH,))
    new_start, new_end = signed.find(_HEADER_START), signed.find(_HEADER_END)
    return envelope[:start] + signed[new_start:new_end] + envelope[end:]


def validate_outgoing(data: bytes, paths: Iterable[str]) -> None:
    """Validate the very bytes about to be sent: re-read them (our own output, so the stdlib parser
    is safe here, and xmlschema walks its elements faster than lxml's) and check each element at
    ``paths`` against the XSD. Raises EnvelopeInvalid."""
    from xml.etree import ElementTree

    root = ElementTree.fromstring(data)
    for path in paths:
        element = root.find(path)
        if element is None:  # pragma: no cover - we built it
            raise EnvelopeInvalid(f"invalid mktows envelope: no {path}")
        error = _first_schema_error(element)
        if error is not None:
            raise EnvelopeInvalid("invalid mktows envelope (not sent): " + _describe_schema_error(error))


_SIGNATURE_RE = re.compile(
    r"(<(?:[A-Za-z_][\w.-]*:)?requestSignature\b[^>]*?(?<!/)>)(.*?)(</(?:[A-Za-z_][\w.-]*:)?requestSignature\s*>)",
    re.DOTALL)


def redact(envelope: bytes | str) -> str:
    """The envelope as text with the content of every requestSignature replaced (for debug logs)."""
    if isinstance(envelope, (bytes, bytearray, memoryview)):
        envelope = bytes(envelope).decode("utf-8", errors="replace")
    return _SIGNATURE_RE.sub(r"\1***REDACTED***\3", envelope)


# --------------------------------------------------------------------------------------------------
# Safe parsing


def _dtd_before_root(data: bytes) -> bool:
    """Whether a DOCTYPE (or any other ``<!`` declaration) precedes the root element.

    Skips the XML declaration, processing instructions and comments of the prolog; stops at the
    first element start tag. (Documents in encodings other than UTF-8/ASCII are not understood
    here; the parser settings and the post-parse check still refuse their DTDs.)
    """
    i = 0
    n = len(data)
    while i < n:
        j = data.find(b"<", i)
        if j < 0:
            return False
        if data.startswith(b"<?", j):
            end = data.find(b"?>", j + 2)
            if end < 0:
                return False
            i = end + 2
        elif data.startswith(b"<!--", j):
            end = data.find(b"-->", j + 4)
            if end < 0:
                return False
            i = end + 3
        else:
            return data.startswith(b"<!", j)
    return False


_PARSER_WHERE = re.compile(r"\s*\(<string>, line \d+\)$")


def parse_xml_safely(data: bytes, max_bytes: int = MAX_RESPONSE_BYTES):
    """Parse untrusted XML into an lxml element, refusing anything hostile.

    Refused with :class:`ResponseError`: more than ``max_bytes``, empty or malformed input, any
    DOCTYPE/DTD (internal subset or not) and so any entity declaration, entity references, trees
    deeper than libxml2's default limit. Entities are never expanded, nothing is fetched.
    """
    etree = _etree()
    if isinstance(data, str):
        raise TypeError("parse_xml_safely expects bytes, not str")
    data = bytes(data)
    if len(data) > max_bytes:
        raise ResponseError(f"XML document of {len(data)} bytes exceeds the limit of {max_bytes} bytes")
    if not data.strip():
        raise ResponseError("empty XML document")
    if _dtd_before_root(data):
        raise ResponseError("refusing an XML document with a DOCTYPE/DTD")
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, dtd_validation=False,
                             huge_tree=False, remove_comments=True, remove_pis=True, collect_ids=False)
    try:
        root = etree.fromstring(data, parser)
    except etree.XMLSyntaxError as exc:
        raise ResponseError(f"malformed XML: {_one_line(_PARSER_WHERE.sub('', str(exc)), 200)}") from None
    except ValueError as exc:  # e.g. unsupported encoding declarations
        raise ResponseError(f"unreadable XML: {_one_line(str(exc), 200)}") from None
    docinfo = root.getroottree().docinfo
    if docinfo.doctype or docinfo.internalDTD is not None or docinfo.externalDTD is not None:
        raise ResponseError("refusing an XML document with a DOCTYPE/DTD")
    if next(root.iter(etree.Entity), None) is not None:
        raise ResponseError("refusing an XML document with entity references")
    return root


# --------------------------------------------------------------------------------------------------
# Client: response


def _is_nil(el) -> bool:
    return el.get(_XSI_NIL) in ("true", "1")


def _text(parent, tag: str) -> str | None:
    """Text of an unqualified child element; None if the element is absent or xsi:nil."""
    el = parent.find(tag)
    if el is None or _is_nil(el):
        return None
    return el.text or ""


def _elements(parent) -> list:
    return [child for child in parent if isinstance(child.tag, str)]


_HTML_TITLE_RE = re.compile(rb"<title[^>]*>(.*?)</title", re.IGNORECASE | re.DOTALL)


def _looks_like_html(body: bytes) -> bool:
    head = body[:512].lstrip().lower()
    return head.startswith(b"<!doctype html") or head.startswith(b"<html")


def parse_response(body: bytes, http_status: int = 200) -> list[SyncStatus]:
    """The sync statuses of a syncMultipleLeads response, in the order of the records sent.

    A SOAP fault (whatever the HTTP status) raises :class:`SoapFault` with the mktows code. Anything
    else that is not an XSD-valid ``successSyncMultipleLeads`` under HTTP 2xx — HTML error pages,
    malformed or hostile XML, other elements — raises :class:`ResponseError`.
    """
    success = success_element(body, http_status, TAG_SUCCESS)
    return [_status(item) for item in success.find("result").find("syncStatusList").iterchildren("syncStatus")]


def success_element(body: bytes, http_status: int, tag: str):
    """The XSD-valid success element `tag` (e.g. ns1:successSyncMultipleLeads) of a response: a SOAP
    fault raises :class:`SoapFault`, anything else :class:`ResponseError`."""
    where = f"HTTP {http_status}"
    body = bytes(body)
    if _looks_like_html(body):
        match = _HTML_TITLE_RE.search(body[:64 * 1024])
        title = _one_line(match.group(1).decode("utf-8", "replace"), 100) if match else ""
        raise ResponseError(f"{where}: expected a SOAP response, got an HTML page"
                            + (f" ({title})" if title else ""))
    try:
        root = parse_xml_safely(body)
    except ResponseError as exc:
        raise ResponseError(f"{where}: unusable response: {exc.message}") from None
    if root.tag != TAG_ENVELOPE:
        raise ResponseError(f"{where}: expected a SOAP 1.1 envelope, got <{_tag_name(root)}>")
    soap_body = root.find(TAG_BODY)
    if soap_body is None:
        raise ResponseError(f"{where}: SOAP envelope without a Body")
    children = _elements(soap_body)
    for child in children:
        if child.tag == TAG_FAULT:
            raise _fault_from(child, http_status)
    name = "ns1:" + tag[len(_MKTOWS):]
    if len(children) != 1 or children[0].tag != tag:
        got = ", ".join(f"<{_tag_name(c)}>" for c in children[:3]) or "nothing"
        raise ResponseError(f"{where}: expected {name} in the SOAP Body, got {got}")
    if not 200 <= http_status < 300:
        raise ResponseError(f"{where}: a {name} body with an error status")
    problem = shared_validator().first_error(children[0])
    if problem is not None:
        raise ResponseError(f"{where}: response does not match the mktows schema: {_one_line(problem, 240)}")
    return children[0]


def _status(item) -> SyncStatus:
    """One schema-valid syncStatus, in one pass over its children (not a find() per field)."""
    lead_id = status = error = None
    for child in item.iterchildren("leadId", "status", "error"):
        tag = child.tag
        if tag == "leadId":
            lead_id = child.text
        elif tag == "status":
            status = child.text
        elif not _is_nil(child):
            error = child.text
    return SyncStatus(lead_id=int(lead_id), status=status, error=visible(error) if error else None)


_LEADING_CODE_RE = re.compile(r"\s*(\d+)\b")


def _fault_from(fault, http_status: int | None) -> SoapFault:
    faultcode = fault.findtext("{*}faultcode") or ""
    faultstring = fault.findtext("{*}faultstring") or ""
    code = detail_message = None
    detail = fault.find("{*}detail")
    exception = detail.find("{*}serviceException") if detail is not None else None
    if exception is not None:
        code = (exception.findtext("{*}code") or "").strip() or None
        detail_message = (exception.findtext("{*}message") or "").strip() or None
    if code is None:
        match = _LEADING_CODE_RE.match(faultstring)
        code = match.group(1) if match else None
    code = _one_line(code, 32) if code else None
    message = faultstring.strip()
    if code and message.startswith(code):
        message = re.sub(r"^\d+\s*[-:]?\s*", "", message)
    if not message and detail_message:
        message = re.sub(r"\s*\(\d+\)$", "", detail_message)
    if not message:
        message = codes.CODES[code].message if code in codes.CODES else "no fault message"
    return SoapFault(code, _one_line(message), _one_line(faultcode, 100), http_status)
