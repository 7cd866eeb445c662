"""The SOAP transport's credentials: read from exactly three environment variables, each missing one
named, unsafe or malformed endpoints refused (plain http only on loopback, the override option named
when refused), the encryption key never shown, and credentials built directly checked the same way.
"""

from __future__ import annotations

import pytest

from reconcile.errors import ConfigError, ExitStatus
from reconcile.remote.soap.transport import Credentials
from transport_helpers import ENV

# -- credentials ---------------------------------------------------------------------------------


def test_credentials_from_env_reads_only_the_three_variables():
    creds = Credentials.from_env(dict(ENV, OTHER="x"))
    assert creds.endpoint == ENV["MARKETO_SOAP_ENDPOINT"]
    assert creds.user_id == "user_1"
    assert creds.encryption_key == "s3cr3t-key-value-123"
    override = Credentials.from_env(ENV, endpoint_override="https://other.example.com/soap/mktows/2_1")
    assert override.endpoint == "https://other.example.com/soap/mktows/2_1"


@pytest.mark.parametrize("name", sorted(ENV))
def test_a_missing_variable_is_named(name):
    env = {k: v for k, v in ENV.items() if k != name}
    with pytest.raises(ConfigError) as info:
        Credentials.from_env(env)
    assert name in str(info.value)
    assert info.value.exit_status == ExitStatus.USAGE
    with pytest.raises(ConfigError, match=name):
        Credentials.from_env(dict(ENV, **{name: "  "}))


def test_all_missing_variables_are_named():
    with pytest.raises(ConfigError) as info:
        Credentials.from_env({})
    for name in ENV:
        assert name in str(info.value)


@pytest.mark.parametrize("endpoint", ["http://100-AEK-913.mktoapi.com/soap/mktows/2_1",
                                      "http://10.0.0.1:8080/soap/mktows/2_1",
                                      "http://localhost.evil.com/soap/mktows/2_1",
                                      "ftp://127.0.0.1/x", "not a url", "https:///nohost",
                                      "https://user:pw@host.example.com/soap"])
def test_unsafe_or_bad_endpoints_are_refused(endpoint):
    with pytest.raises(ConfigError) as info:
        Credentials.from_env(dict(ENV, MARKETO_SOAP_ENDPOINT=endpoint))
    assert "MARKETO_SOAP_ENDPOINT" in str(info.value)
    assert ENV["MARKETO_ENCRYPTION_KEY"] not in str(info.value)


def test_http_refusal_names_the_override_option():
    with pytest.raises(ConfigError, match="--endpoint"):
        Credentials.from_env(ENV, endpoint_override="http://marketo.example.com/soap/mktows/2_1")


@pytest.mark.parametrize("endpoint", ["http://127.0.0.1:8080/soap/mktows/2_1", "http://127.9.9.9/soap/mktows/2_1",
                                      "http://localhost:1/soap/mktows/2_1", "http://[::1]:8080/soap/mktows/2_1",
                                      "https://any.example.com/soap/mktows/2_1"])
def test_loopback_http_and_any_https_are_accepted(endpoint):
    assert Credentials.from_env(dict(ENV, MARKETO_SOAP_ENDPOINT=endpoint)).endpoint == endpoint


def test_the_key_is_never_shown():
    creds = Credentials.from_env(ENV)
    for text in (repr(creds), str(creds), f"{creds}", repr([creds])):
        assert ENV["MARKETO_ENCRYPTION_KEY"] not in text
        assert "***" in text


def test_credentials_constructed_directly_are_checked_too():
    with pytest.raises(ConfigError, match="http://"):
        Credentials("http://marketo.example.com/soap/mktows/2_1", "u", "k")
    with pytest.raises(ConfigError, match="MARKETO_ENCRYPTION_KEY"):
        Credentials("https://marketo.example.com/soap/mktows/2_1", "u", "")
