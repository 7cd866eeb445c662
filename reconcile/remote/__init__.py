"""Marketo APIs, one folder each, behind the transport interface in `base`."""
