"""ALLOCATOR_KAFKA_* security settings: what each combination gives the Kafka
clients (aiokafka's options, faust's credentials), which combinations fail at
start and how, and that the password never shows."""

from __future__ import annotations

import logging
import ssl
from pathlib import Path
from typing import Any

import faust
import pydantic
import pytest
from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth
from faust.types.auth import AuthProtocol, SASLMechanism

from allocator.config import Settings, kafka_login_refusal
from streams.broker import free_port

PASSWORD = "s3cr3t-Pa55"


@pytest.fixture(scope="module")
def ca_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    trustme = pytest.importorskip("trustme")
    path = tmp_path_factory.mktemp("ca") / "ca.pem"
    trustme.CA().cert_pem.write_to_path(str(path))
    return path


def settings(**values: str) -> Settings:
    return Settings.from_environment(
        {f"ALLOCATOR_KAFKA_{name.upper()}": value for name, value in values.items()}
    )


def sasl_ssl(ca_file: Path, mechanism: str = "SCRAM-SHA-512") -> Settings:
    return settings(
        security_protocol="SASL_SSL",
        ssl_cafile=str(ca_file),
        sasl_mechanism=mechanism,
        sasl_username="alice",
        sasl_password=PASSWORD,
    )


def without_context(options: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in options.items() if k != "ssl_context"}


def test_plaintext_by_default() -> None:
    plain = Settings.from_environment({})
    assert plain.kafka_client_options() == {"security_protocol": "PLAINTEXT"}
    assert plain.kafka_broker_credentials() is None
    assert "PLAINTEXT" in plain.described()


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_sasl_ssl_gives_aiokafka_and_faust_the_same_login(ca_file: Path, mechanism: str) -> None:
    secured = sasl_ssl(ca_file, mechanism)
    options = secured.kafka_client_options()
    assert without_context(options) == {
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": mechanism,
        "sasl_plain_username": "alice",
        "sasl_plain_password": PASSWORD,
    }
    context = options["ssl_context"]
    assert isinstance(context, ssl.SSLContext)
    # The broker's certificate and its name are checked, against our CA only.
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert context.cert_store_stats()["x509_ca"] == 1

    credentials = secured.kafka_broker_credentials()
    assert isinstance(credentials, faust.SASLCredentials)
    assert credentials.protocol == AuthProtocol.SASL_SSL
    assert credentials.mechanism == SASLMechanism(mechanism)
    # What faust's driver hands aiokafka is what our own clients get.
    assert without_context(dict(credentials_to_aiokafka_auth(credentials))) == without_context(
        options
    )


def test_sasl_plaintext_has_no_tls() -> None:
    secured = settings(
        security_protocol="SASL_PLAINTEXT",
        sasl_mechanism="PLAIN",
        sasl_username="alice",
        sasl_password=PASSWORD,
    )
    options = secured.kafka_client_options()
    assert "ssl_context" not in options
    assert options["security_protocol"] == "SASL_PLAINTEXT"
    credentials = secured.kafka_broker_credentials()
    assert isinstance(credentials, faust.SASLCredentials)
    assert credentials.protocol == AuthProtocol.SASL_PLAINTEXT


def test_ssl_alone_uses_the_system_cas_without_a_ca_file() -> None:
    secured = settings(security_protocol="SSL")
    options = secured.kafka_client_options()
    assert set(options) == {"security_protocol", "ssl_context"}
    assert options["ssl_context"].verify_mode == ssl.CERT_REQUIRED
    credentials = secured.kafka_broker_credentials()
    assert isinstance(credentials, faust.SSLCredentials)
    assert dict(credentials_to_aiokafka_auth(credentials))["security_protocol"] == "SSL"
    assert "CA system" in secured.described()


def test_empty_values_mean_unset() -> None:
    plain = settings(ssl_cafile="", sasl_mechanism="", sasl_username="", sasl_password="")
    assert plain.kafka_client_options() == {"security_protocol": "PLAINTEXT"}


@pytest.mark.parametrize(
    ("values", "field", "words"),
    [
        (
            {"security_protocol": "SASL_SSL", "sasl_username": "alice", "sasl_password": PASSWORD},
            "kafka_sasl_mechanism",
            "needs a mechanism (PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512) in "
            "ALLOCATOR_KAFKA_SASL_MECHANISM",
        ),
        (
            {"security_protocol": "SASL_SSL", "sasl_mechanism": "PLAIN", "sasl_username": "a"},
            "kafka_sasl_password",
            "needs a password in ALLOCATOR_KAFKA_SASL_PASSWORD",
        ),
        (
            {
                "security_protocol": "SASL_PLAINTEXT",
                "sasl_mechanism": "PLAIN",
                "sasl_password": PASSWORD,
            },
            "kafka_sasl_username",
            "needs a user in ALLOCATOR_KAFKA_SASL_USERNAME",
        ),
        (
            {"security_protocol": "SSL", "sasl_password": PASSWORD},
            "kafka_sasl_username",
            "ALLOCATOR_KAFKA_SASL_PASSWORD given, but ALLOCATOR_KAFKA_SECURITY_PROTOCOL=SSL",
        ),
        (
            {"ssl_cafile": "/etc/hostname"},
            "kafka_ssl_cafile",
            "a CA file is for TLS, but ALLOCATOR_KAFKA_SECURITY_PROTOCOL is PLAINTEXT",
        ),
        (
            {"security_protocol": "SSL", "ssl_cafile": "/no/such/ca.pem"},
            "kafka_ssl_cafile",
            "ALLOCATOR_KAFKA_SSL_CAFILE: there is no file /no/such/ca.pem",
        ),
        (
            {"security_protocol": "SSL", "ssl_cafile": "/etc/hostname"},
            "kafka_ssl_cafile",
            "ALLOCATOR_KAFKA_SSL_CAFILE: /etc/hostname is not a readable PEM CA bundle",
        ),
        ({"security_protocol": "TLS"}, "kafka_security_protocol", "'SASL_SSL'"),
        (
            {
                "security_protocol": "SASL_SSL",
                "sasl_mechanism": "GSSAPI",
                "sasl_username": "alice",
                "sasl_password": PASSWORD,
            },
            "kafka_sasl_mechanism",
            "'SCRAM-SHA-512'",
        ),
    ],
)
def test_what_cannot_work_fails_at_start_naming_the_variable(
    values: dict[str, str], field: str, words: str
) -> None:
    with pytest.raises(pydantic.ValidationError) as caught:
        settings(**values)
    first = caught.value.errors()[0]
    assert first["loc"] == (field,)
    assert words in first["msg"]
    assert PASSWORD not in str(caught.value)
    assert all(PASSWORD not in repr(error.get("input")) for error in caught.value.errors())


def test_the_password_never_shows(ca_file: Path) -> None:
    secured = sasl_ssl(ca_file)
    for shown in (
        repr(secured),
        str(secured),
        secured.model_dump_json(),
        str(secured.model_dump()),
        secured.described(),
        repr(secured.kafka_broker_credentials()),
    ):
        assert PASSWORD not in shown
    line = secured.described()
    assert "SASL_SSL, SCRAM-SHA-512 as 'alice'" in line and str(ca_file) in line


def test_aiokafka_debug_lines_hide_the_sasl_exchange(
    ca_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """aiokafka logs each request at DEBUG; a PLAIN login carries the password."""
    from aiokafka.protocol.admin import SaslAuthenticateRequest_v1

    sasl_ssl(ca_file, "PLAIN").kafka_client_options()
    login = SaslAuthenticateRequest_v1(sasl_auth_bytes=b"alice\0alice\0" + PASSWORD.encode())
    assert PASSWORD in str(login)  # what would be logged
    with caplog.at_level(logging.DEBUG, logger="aiokafka.conn"):
        # aiokafka.conn's own call, as it sends a request
        logging.getLogger("aiokafka.conn").debug(
            "Request to %s:%d %d: %s", "127.0.0.1", 9093, 3, login
        )
    assert "Request to 127.0.0.1:9093 3: <SASL exchange hidden>" in caplog.text
    assert PASSWORD not in caplog.text


async def test_no_refusal_is_claimed_where_nothing_answers() -> None:
    # A closed port is an outage: the caller's own connection error stands.
    bootstrap = f"127.0.0.1:{free_port()}"
    assert await kafka_login_refusal(bootstrap, {"security_protocol": "PLAINTEXT"}) is None
