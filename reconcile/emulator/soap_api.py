"""The emulator's SOAP face: Marketo's mktows endpoint for syncMultipleLeads, and its server-side XML.

Routes
  POST /soap/mktows/<version>          syncMultipleLeads (SOAP 1.1, document/literal), and
                                       listOperation (its rules in `soap_lists`)
  GET  /soap/mktows/<version>?WSDL     the WSDL, its soap:address pointing at this emulator

Every POST is checked in this order; the first failure answers with a SOAP 1.1 `SOAP-ENV:Fault`
(HTTP 500) carrying the mktows code, and nothing is applied:

  1. parse      body over `max_body_bytes`, not XML, hostile XML (DTD/entities) -> 20012
                not valid against schemas/mktows.xsd                         -> 20017
                another operation than syncMultipleLeads                     -> 20019
  2. auth       no AuthenticationHeader, unknown user, wrong signature      -> 20014
                (HMAC-SHA1 hex compared in constant time)
  3. freshness  requestTimestamp unparsable, without offset, or more than
                15 minutes from the emulator's clock (either way)           -> 20016
  4. limits     more than `max_batch` records                               -> 20110 Bad Parameter
                (chosen over 20017 so clients can tell "batch too big" from "schema-invalid";
                not counted against rate or quota)
                then the instance's limits (see `limits`), as their reasons' codes below
  5. faults     injected latency / failure / commit-then-drop (see `faults`)
  6. semantics  the records, in order, atomically, persisted before the response (`soap_rules`)

Requests are validated with libxml2's XML Schema (lxml), against the same XSD the client checks its
envelopes with through xmlschema: the emulator is not the applier, and must not be the bottleneck
of a benchmark (about 200 ms of CPU per 300-record call with xmlschema, a few ms with libxml2).
Request bodies are never logged (they carry signatures).
"""

from __future__ import annotations

import functools
import hmac
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Callable, Mapping, Sequence

from reconcile.core.records import SYNC_STATUSES, LeadRecord, SyncStatus
from reconcile.emulator import calls as calllog
from reconcile.emulator.reasons import Reason, Refused
from reconcile.emulator.store import StoreError
from reconcile.errors import ResponseError
from reconcile.remote.soap import codes
from reconcile.remote.soap.envelope import CONTENT_TYPE, EnvelopeInvalid, parse_xml_safely, sign
from reconcile.remote.soap.wire import MKTOWS, NS_MKTOWS, NS_SOAP, NS_XSI, XML_INCOMPATIBLE, XsdValidator, shared_validator
from reconcile.remote.soap.wire import one_line, resource_bytes, tag_name
from reconcile.remote.soap.wire import TAG_AUTH, TAG_BODY, TAG_ENVELOPE, TAG_FAULT, TAG_HEADER, TAG_PARAMS, TAG_SERVICE_EXCEPTION

__all__ = ["MAX_REQUEST_BYTES", "WSDL_ADDRESS_PLACEHOLDER", "REASON_CODES", "AuthHeader", "RequestRejected",
           "SoapFace", "SyncRequest", "build_fault", "build_response", "parse_request",
           "parse_w3c_timestamp", "wsdl_text"]

MAX_REQUEST_BYTES = 16 * 1024 * 1024
WSDL_ADDRESS_PLACEHOLDER = "http://localhost/soap/mktows/2_1"

# What each neutral reason is called in mktows. SOAP has no "unavailable" or "timed out": Marketo
# answered those as internal errors.
REASON_CODES: dict[Reason, str] = {
    Reason.RATE_LIMIT: codes.RATE_LIMIT,
    Reason.CONCURRENCY_LIMIT: codes.CONCURRENCY_LIMIT,
    Reason.DAILY_QUOTA: codes.QUOTA_EXCEEDED,
    Reason.BAD_PARAMETER: codes.BAD_PARAMETER,
    Reason.INTERNAL_ERROR: codes.INTERNAL_ERROR,
    Reason.UNAVAILABLE: codes.INTERNAL_ERROR,
    Reason.TIMEOUT: codes.INTERNAL_ERROR,
    Reason.TRANSIENT: codes.INTERNAL_ERROR,
    Reason.ACCESS_DENIED: codes.ACCESS_DENIED,
    Reason.AUTH_FAILED: codes.AUTH_FAILED,
}
_SERVER_FAULTS = {codes.INTERNAL_ERROR_SEVERE, codes.INTERNAL_ERROR}

_XSI_NIL = "{%s}nil" % NS_XSI
_XML_DECLARATION = b'<?xml version="1.0" encoding="UTF-8"?>\n'


class RequestRejected(Exception):
    """The request cannot be served; answer with a fault carrying this mktows code."""

    def __init__(self, code: str, message: str):
        super().__init__(f"{code} - {message}")
        self.code = code
        self.message = message


@dataclass(frozen=True)
class AuthHeader:
    """The ``ns1:AuthenticationHeader``. The signature is kept out of ``repr`` (logs)."""

    user_id: str
    signature: str = field(repr=False)
    timestamp: str


@dataclass(frozen=True)
class SyncRequest:
    header: AuthHeader | None
    records: tuple[LeadRecord, ...]
    dedup_enabled: bool | None


# --------------------------------------------------------------------------------------------------
# Validation with libxml2 (see wire.XsdValidator)


def _validator() -> XsdValidator:
    return shared_validator()


def _reject_invalid(element) -> None:
    error = _validator().first_error(element)
    if error is not None:
        raise RequestRejected(codes.INVALID_REQUEST, one_line(f"{codes.message(codes.INVALID_REQUEST)}: {error}", 300))


# --------------------------------------------------------------------------------------------------
# Request


def _rejected(code: str, detail: str) -> RequestRejected:
    return RequestRejected(code, f"{codes.message(code)}: {detail}")


def parse_request(body: bytes, max_bytes: int = MAX_REQUEST_BYTES,
                  operations: Mapping[str, Callable[[Any, AuthHeader | None], Any]] | None = None) -> Any:
    """Parse and validate a syncMultipleLeads request (a SyncRequest), or another operation's whose
    params element `operations` maps to its parser (given the element and the header).

    Raises :class:`RequestRejected` with 20012 for malformed/hostile XML or a non-SOAP document,
    20019 for an operation other than these, 20017 when the header or the body
    breaks the XSD. A missing AuthenticationHeader gives ``header=None`` (the caller answers 20014).
    """
    operations = operations or {}
    try:
        root = parse_xml_safely(body, max_bytes)
    except ResponseError as exc:
        raise _rejected(codes.REQUEST_NOT_UNDERSTOOD, exc.message) from None
    if root.tag != TAG_ENVELOPE:
        raise _rejected(codes.REQUEST_NOT_UNDERSTOOD, f"expected a SOAP 1.1 envelope, got <{tag_name(root)}>")
    soap_body = root.find(TAG_BODY)
    if soap_body is None:
        raise _rejected(codes.REQUEST_NOT_UNDERSTOOD, "SOAP envelope without a Body")
    body_elements = [child for child in soap_body if isinstance(child.tag, str)]
    if not body_elements:
        raise _rejected(codes.REQUEST_NOT_UNDERSTOOD, "empty SOAP Body")
    if len(body_elements) > 1:
        raise _rejected(codes.REQUEST_NOT_UNDERSTOOD, "more than one element in the SOAP Body")
    params = body_elements[0]
    if params.tag != TAG_PARAMS and params.tag not in operations:
        tag = params.tag
        name = tag[len(MKTOWS):] if tag.startswith(MKTOWS) else tag_name(params)
        raise _rejected(codes.UNSUPPORTED_OPERATION, one_line(name, 120))

    header = None
    soap_header = root.find(TAG_HEADER)
    auth = soap_header.find(TAG_AUTH) if soap_header is not None else None
    if auth is not None:
        _reject_invalid(auth)
        header = AuthHeader(user_id=auth.findtext("mktowsUserId"), signature=auth.findtext("requestSignature"),
                            timestamp=auth.findtext("requestTimestamp"))
    if params.tag in operations:
        return operations[params.tag](params, header)
    _reject_invalid(params)
    records = tuple(_record(element) for element in params.find("leadRecordList").iterchildren("leadRecord"))
    dedup = params.find("dedupEnabled")
    dedup_enabled = None if dedup is None or _is_nil(dedup) else (dedup.text or "").strip() in ("true", "1")
    return SyncRequest(header=header, records=records, dedup_enabled=dedup_enabled)


def _is_nil(element) -> bool:
    return element.get(_XSI_NIL) in ("true", "1")


def _record(element) -> LeadRecord:
    """One schema-valid leadRecord (its children are unqualified and in the XSD's order). Element
    access is what costs here, so each child is visited once and `xsi:nil` is looked up only on
    an element without text."""
    values: dict[str, str | None] = {}
    attributes: list[tuple[str, str | None]] = []
    for child in element.iterchildren():
        tag = child.tag
        if tag == "leadAttributeList":
            for attribute in child.iterchildren("attribute"):
                name = value = None
                for part in attribute.iterchildren():
                    if part.tag == "attrName":
                        name = part.text or ""
                    elif part.tag == "attrValue":
                        value = part.text or None
                attributes.append((name, value))
        else:
            text = child.text
            values[tag] = text if text is not None else (None if _is_nil(child) else "")
    lead_id = values.get("Id")
    return LeadRecord(lead_id=int(lead_id) if lead_id is not None else None, email=values.get("Email"),
                      foreign_sys_person_id=values.get("ForeignSysPersonId"),
                      foreign_sys_type=values.get("ForeignSysType"), attributes=tuple(attributes))


def parse_w3c_timestamp(text: str) -> datetime | None:
    """A W3C/ISO 8601 date-time with an offset (or Z); None when unparsable or without offset."""
    value = text.strip()
    if "T" not in value.upper():
        return None
    if value.endswith(("Z", "z")):
        value = value[:-1] + "+00:00"
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    if moment.tzinfo is None or moment.utcoffset() is None:
        return None
    return moment


# --------------------------------------------------------------------------------------------------
# Response and faults


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("\r", "&#13;")


def _status_text(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise EnvelopeInvalid(f"invalid mktows envelope (not sent): {what} must be text, not {value!r}")
    bad = XML_INCOMPATIBLE.search(value)
    if bad:
        raise EnvelopeInvalid(f"invalid mktows envelope (not sent): {what} contains U+{ord(bad.group()):04X}, "
                              "a character XML 1.0 cannot carry")
    return _escape(value)


_RESPONSE_HEAD = (f'<SOAP-ENV:Envelope xmlns:SOAP-ENV="{NS_SOAP}" xmlns:xsi="{NS_XSI}" xmlns:ns1="{NS_MKTOWS}">\n'
                  "<SOAP-ENV:Body>\n<ns1:successSyncMultipleLeads>\n<result>\n<syncStatusList>\n")
_RESPONSE_TAIL = ("</syncStatusList>\n</result>\n</ns1:successSyncMultipleLeads>\n</SOAP-ENV:Body>\n"
                  "</SOAP-ENV:Envelope>\n")


def build_response(statuses: Sequence[SyncStatus]) -> bytes:
    """A successSyncMultipleLeads envelope like Marketo's (``<error xsi:nil="true"/>`` when None).

    Valid against the XSD by construction: a fixed frame, an int leadId, a status from the
    LeadSyncStatus enumeration and escaped, XML-safe error text; anything else raises EnvelopeInvalid.
    (Re-parsing and validating each answer cost more CPU than the rest of the answer.)"""
    parts = [_RESPONSE_HEAD]
    for index, status in enumerate(statuses):
        where = f"syncStatus[{index + 1}]"
        if not isinstance(status, SyncStatus):
            raise EnvelopeInvalid(f"invalid mktows envelope (not sent): {where} is not a SyncStatus")
        if isinstance(status.lead_id, bool) or not isinstance(status.lead_id, int):
            raise EnvelopeInvalid(f"invalid mktows envelope (not sent): {where} leadId {status.lead_id!r}")
        if not -2**31 <= status.lead_id < 2**31:
            raise EnvelopeInvalid(f"invalid mktows envelope (not sent): {where} leadId {status.lead_id} "
                                  "is out of xs:int range")
        if status.status not in SYNC_STATUSES:
            raise EnvelopeInvalid(f"invalid mktows envelope (not sent): {where} status {status.status!r} is not "
                                  f"one of {', '.join(SYNC_STATUSES)}")
        error = ('<error xsi:nil="true"/>' if status.error is None
                 else f"<error>{_status_text(status.error, where + ' error')}</error>")
        parts.append(f"<syncStatus>\n<leadId>{status.lead_id}</leadId>\n"
                     f"<status>{status.status}</status>\n{error}\n</syncStatus>\n")
    parts.append(_RESPONSE_TAIL)
    return _XML_DECLARATION + "".join(parts).encode("utf-8")


def build_fault(code: str, message: str, faultcode: str = "SOAP-ENV:Client") -> bytes:
    """A SOAP fault in Marketo's shape: faultstring ``"<code> - <message>"`` and a mktServiceException
    detail with message ``"<message> (<code>)"`` and the code. Text is made XML-safe and one line."""
    from lxml import etree

    code = one_line(str(code), 32)
    message = one_line(message or codes.message(code), 1000)
    envelope = etree.Element(TAG_ENVELOPE, nsmap={"SOAP-ENV": NS_SOAP})
    envelope.text = "\n"
    body = etree.SubElement(envelope, TAG_BODY)
    body.text = body.tail = "\n"
    fault = etree.SubElement(body, TAG_FAULT)
    fault.tail = "\n"
    for tag, text in (("faultcode", one_line(faultcode, 100)), ("faultstring", f"{code} - {message}")):
        etree.SubElement(fault, tag).text = text
        fault[-1].tail = "\n"
    detail = etree.SubElement(fault, "detail")
    exception = etree.SubElement(detail, TAG_SERVICE_EXCEPTION, nsmap={"ns1": NS_MKTOWS})
    exception.text = "\n"
    etree.SubElement(exception, "name").text = "mktServiceException"
    etree.SubElement(exception, "message").text = f"{message} ({code})"
    exception[-1].tail = "\n"
    etree.SubElement(exception, "code").text = code
    return _XML_DECLARATION + etree.tostring(envelope, encoding="UTF-8") + b"\n"


@functools.lru_cache(maxsize=1)
def _wsdl_template() -> str:
    return resource_bytes("mktows.wsdl").decode("utf-8")


def wsdl_text(endpoint: str) -> str:
    """The bundled WSDL (schemas/mktows.wsdl) with the soap:address location set to ``endpoint``
    (attribute-escaped); the rest of the file is served byte for byte."""
    if not isinstance(endpoint, str) or XML_INCOMPATIBLE.search(endpoint):
        raise ValueError(f"not a usable endpoint: {endpoint!r}")
    text = _wsdl_template()
    placeholder = f'location="{WSDL_ADDRESS_PLACEHOLDER}"'
    if text.count(placeholder) != 1:  # pragma: no cover - guards edits of the WSDL
        raise RuntimeError("schemas/mktows.wsdl must contain the address placeholder exactly once")
    escaped = (endpoint.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
               .replace('"', "&quot;").replace("\t", "&#9;").replace("\n", "&#10;").replace("\r", "&#13;"))
    return text.replace(placeholder, f'location="{escaped}"')


# --------------------------------------------------------------------------------------------------
# The face


class SoapFace:
    """Serves the mktows routes of one emulator (see the module docstring for the rules)."""

    api = calllog.SOAP

    def __init__(self, emulator: Any):
        self._emulator = emulator

    def wsdl(self, handler: Any, version: str) -> None:
        endpoint = f"{self._emulator.base_url}/soap/mktows/{version}"
        handler.send(200, wsdl_text(endpoint).encode("utf-8"), "text/xml; charset=utf-8")

    def sync(self, handler: Any) -> None:
        emulator = self._emulator
        call = emulator.new_call(handler, self.api, calllog.WRITE)
        emulator.run_call(handler, call, lambda: self._sync(handler, call),
                          lambda: self._fault(handler, call, codes.INTERNAL_ERROR))

    def _fault(self, handler: Any, call: Any, code: str, message: str | None = None) -> None:
        call.code = code
        text = message or codes.message(code)
        faultcode = "SOAP-ENV:Server" if code in _SERVER_FAULTS else "SOAP-ENV:Client"
        handler.send(500, build_fault(code, text, faultcode=faultcode), CONTENT_TYPE)

    def _sync(self, handler: Any, call: Any) -> None:
        config = self._emulator.config
        body, problem = handler.read_body(config.max_body_bytes)
        if problem == "length":
            handler.send(411, b"Content-Length required (no chunked request bodies)\n",
                         "text/plain; charset=utf-8", close=True)
            return
        if problem == "size":
            self._fault(handler, call, codes.REQUEST_NOT_UNDERSTOOD,
                        f"{codes.message(codes.REQUEST_NOT_UNDERSTOOD)}: request body over "
                        f"{config.max_body_bytes} bytes")
            return
        if body is None:  # the client went away
            return
        other = self._emulator.soap_lists  # listOperation: see soap_lists
        try:
            request = parse_request(body, max_bytes=config.max_body_bytes, operations=other.parsers)
        except RequestRejected as exc:
            self._fault(handler, call, exc.code, exc.message or None)
            return
        call.records = len(request.records)
        if not self._authentic(request.header):
            self._fault(handler, call, codes.AUTH_FAILED)
            return
        if not self._fresh(request.header.timestamp):
            self._fault(handler, call, codes.REQUEST_EXPIRED)
            return
        refusal = None if isinstance(request, SyncRequest) else other.refusal(request)
        if refusal is not None:
            self._fault(handler, call, refusal.code, refusal.message)
            return
        if isinstance(request, SyncRequest) and len(request.records) > config.max_batch:
            self._fault(handler, call, REASON_CODES[Reason.BAD_PARAMETER],
                        f"{codes.message(codes.BAD_PARAMETER)}: leadRecordList has {len(request.records)} "
                        f"records; at most {config.max_batch} are allowed")
            return
        try:
            call.admit()
        except Refused as exc:
            self._fault(handler, call, REASON_CODES[exc.reason])
            return
        if isinstance(request, SyncRequest):
            self._apply(handler, call, request)
        else:
            other.serve(handler, call, request, self._fault)

    def _apply(self, handler: Any, call: Any, request: SyncRequest) -> None:
        emulator = self._emulator
        decision = emulator.inflict(handler, call, lambda failure: self._fault(
            handler, call, failure.fail_code if failure.fail_code in codes.CODES
            else REASON_CODES[failure.fail_reason]))
        if decision is None:
            return
        try:
            outcomes = emulator.store.sync(request.records, request.dedup_enabled)
        except StoreError:
            calllog.log.exception("emulator: the lead database could not be written; call rolled back")
            self._fault(handler, call, REASON_CODES[Reason.INTERNAL_ERROR])
            return
        if decision.drop:
            call.outcome = calllog.DROPPED
            handler.drop()
            return
        statuses = [SyncStatus(lead_id=o.lead_id, status=o.status, error=o.error) for o in outcomes]
        handler.send(200, build_response(statuses), CONTENT_TYPE)

    def _authentic(self, header: AuthHeader | None) -> bool:
        if header is None:
            return False
        config = self._emulator.config
        user_id = header.user_id or ""
        signature = (header.signature or "").strip().lower()
        expected = sign(config.encryption_key, header.timestamp or "", config.user_id)
        user_ok = hmac.compare_digest(user_id.encode("utf-8"), config.user_id.encode("utf-8"))
        signature_ok = hmac.compare_digest(signature.encode("utf-8"), expected.lower().encode("utf-8"))
        return user_ok and signature_ok

    def _fresh(self, timestamp: str | None) -> bool:
        moment = parse_w3c_timestamp(timestamp or "")
        if moment is None:
            return False
        config = self._emulator.config
        return abs(config.now() - moment) <= config.max_clock_skew
