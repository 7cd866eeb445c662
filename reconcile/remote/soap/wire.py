"""The mktows XML vocabulary that both sides of the SOAP wire share.

The client (`remote.soap.envelope`) and the emulator's SOAP face (`emulator.soap_api`) build and read
the same documents; the namespaces, the bundled XSD/WSDL, its libxml2 validator and the rule for
turning untrusted text into a one-line message live here once. Safe parsing itself is
`envelope.parse_xml_safely`.
"""

from __future__ import annotations

import re
import threading

NS_SOAP = "http://schemas.xmlsoap.org/soap/envelope/"
NS_MKTOWS = "http://www.marketo.com/mktows/"
NS_XSI = "http://www.w3.org/2001/XMLSchema-instance"

SOAP = "{%s}" % NS_SOAP
MKTOWS = "{%s}" % NS_MKTOWS

# The elements of a syncMultipleLeads (and a listOperation) exchange, by their qualified names.
TAG_ENVELOPE = SOAP + "Envelope"
TAG_HEADER = SOAP + "Header"
TAG_BODY = SOAP + "Body"
TAG_FAULT = SOAP + "Fault"
TAG_AUTH = MKTOWS + "AuthenticationHeader"
TAG_PARAMS = MKTOWS + "paramsSyncMultipleLeads"
TAG_SUCCESS = MKTOWS + "successSyncMultipleLeads"
TAG_SERVICE_EXCEPTION = MKTOWS + "serviceException"
TAG_LIST_PARAMS = MKTOWS + "paramsListOperation"
TAG_LIST_SUCCESS = MKTOWS + "successListOperation"

# Characters XML 1.0 can carry (Char production); anything else cannot be sent at all.
XML_INCOMPATIBLE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def resource_bytes(name: str) -> bytes:
    """A file of the package's `schemas/` folder (mktows.xsd, mktows.wsdl)."""
    from importlib import resources

    return resources.files("reconcile").joinpath("schemas").joinpath(name).read_bytes()


def one_line(text: str, limit: int = 300) -> str:
    """Text fit for a one-line error message: XML-safe, whitespace collapsed, bounded."""
    text = " ".join(XML_INCOMPATIBLE.sub("\ufffd", text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def tag_name(element) -> str:
    """An element's name as a message shows it: `SOAP-ENV:`/`ns1:` prefixes, else Clark notation."""
    tag = element.tag
    if not isinstance(tag, str):
        return repr(tag)
    if tag.startswith(SOAP):
        return "SOAP-ENV:" + tag[len(SOAP):]
    if tag.startswith(MKTOWS):
        return "ns1:" + tag[len(MKTOWS):]
    return one_line(tag, 120)


class XsdValidator:
    """The mktows XSD compiled by libxml2 (lxml): a 300-record element checks in about a millisecond,
    where xmlschema takes tens. An lxml validator keeps its error log on itself, so one validation
    runs at a time."""

    def __init__(self) -> None:
        from lxml import etree

        parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
        self._schema = etree.XMLSchema(etree.fromstring(resource_bytes("mktows.xsd"), parser))
        self._lock = threading.Lock()

    def first_error(self, element) -> str | None:
        """The first violation of `element` (a global mktows element, validated as it stands in its
        document), described with its path, or None."""
        with self._lock:
            if self._schema.validate(element):
                return None
            entry = self._schema.error_log[0] if len(self._schema.error_log) else None
        if entry is None:  # pragma: no cover - libxml2 always logs why
            return "invalid"
        where = (entry.path or "").replace(MKTOWS, "ns1:")
        return f"{entry.message} (at {where})" if where else entry.message


_shared: list[XsdValidator] = []
_shared_lock = threading.Lock()


def shared_validator() -> XsdValidator:
    """The one compiled validator of this process (compiling the XSD costs more than a validation).

    Built under a lock: libxml2 fails with "Internal error: xmlSchemaPValAttrNodeValue" when two
    threads compile the same schema at once, which the first calls of a concurrent apply would do.
    """
    if not _shared:
        with _shared_lock:
            if not _shared:
                _shared.append(XsdValidator())
    return _shared[0]
