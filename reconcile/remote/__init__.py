"""Marketo APIs, one folder each, behind the transport interface in `base`.

`registry` lists them: adding a transport is one folder (with an `about.py` declaring its
`TransportInfo`) and one line in `registry._TRANSPORTS`.
"""
