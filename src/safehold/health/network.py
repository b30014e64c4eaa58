"""Checks over the network: an HTTP answer, a TCP port, a TLS certificate's remaining validity."""

from __future__ import annotations

import datetime as dt
import ipaddress
import socket
import ssl
from pathlib import Path

import httpx
from cryptography import x509
from cryptography.x509.oid import NameOID

from safehold.config.healthchecks import HealthCheck
from safehold.health.base import CheckFailed, Targets


def http(check: HealthCheck, _targets: Targets) -> str:
    """GET ``url`` (redirects followed, certificates verified): the status and, if given, a text."""
    assert check.url is not None
    try:
        r = httpx.get(check.url, timeout=check.timeout, follow_redirects=True)
    except httpx.HTTPError as exc:
        raise CheckFailed(f"GET {check.url}: {type(exc).__name__}: {exc}") from None
    if r.status_code != check.expect_status:
        raise CheckFailed(f"HTTP {r.status_code}, expected {check.expect_status}")
    if check.contains and check.contains not in r.text:
        raise CheckFailed(f"HTTP {r.status_code}, but the response does not contain {check.contains!r}")
    return f"HTTP {r.status_code}"


def tcp(check: HealthCheck, _targets: Targets) -> str:
    assert check.host is not None and check.port is not None
    try:
        with socket.create_connection((check.host, check.port), timeout=check.timeout):
            pass
    except OSError as exc:
        raise CheckFailed(f"cannot connect to {check.host}:{check.port}: {exc.strerror or exc}") from None
    return f"{check.host}:{check.port} accepts connections"


def _names(cert: x509.Certificate) -> list[str]:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = [str(n) for n in san.get_values_for_type(x509.DNSName)]
        names += [str(a) for a in san.get_values_for_type(x509.IPAddress)]
    except x509.ExtensionNotFound:
        names = [str(a.value) for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    return names


def name_matches(name: str, patterns: list[str]) -> bool:
    """RFC 6125 matching: exact (case-insensitive), or a ``*.`` wildcard for exactly one left label."""
    name = name.lower().rstrip(".")
    try:
        ip = ipaddress.ip_address(name.strip("[]"))
    except ValueError:
        ip = None
    for pattern in (p.lower().rstrip(".") for p in patterns):
        if ip is not None:
            try:
                if ipaddress.ip_address(pattern) == ip:
                    return True
            except ValueError:
                continue
        elif pattern == name or (
            pattern.startswith("*.") and "." in name and name.split(".", 1)[1] == pattern[2:]
        ):
            return True
    return False


def _remaining(cert: x509.Certificate, check: HealthCheck, where: str, now: dt.datetime | None) -> str:
    now = now or dt.datetime.now(dt.UTC)
    if cert.not_valid_before_utc > now:
        raise CheckFailed(
            f"{where}: the certificate is not valid before {cert.not_valid_before_utc:%Y-%m-%d}"
        )
    left = cert.not_valid_after_utc - now
    until = f"{cert.not_valid_after_utc:%Y-%m-%d}"
    if left.total_seconds() <= 0:
        raise CheckFailed(f"{where}: the certificate expired on {until}")
    if left < dt.timedelta(days=check.min_days):
        raise CheckFailed(
            f"{where}: the certificate expires in {left.days} day(s) ({until}), "
            f"less than the {check.min_days} required"
        )
    name = check.server_name or check.host
    if name and not name_matches(name, _names(cert)):
        raise CheckFailed(f"{where}: the certificate is not valid for {name} ({', '.join(_names(cert))})")
    return f"{where}: valid for {left.days} more day(s) (until {until})"


def tls(check: HealthCheck, _targets: Targets, *, now: dt.datetime | None = None) -> str:
    """A certificate file (PEM; the first certificate of a chain) or a server's certificate: its chain is
    verified against the system's trust store (``SSL_CERT_FILE`` is honoured), its name and its remaining
    validity checked."""
    if check.path is not None:
        try:
            data = Path(check.path).read_bytes()
        except OSError as exc:
            raise CheckFailed(f"cannot read {check.path}: {exc.strerror or exc}") from None
        try:
            cert = x509.load_pem_x509_certificates(data)[0]
        except ValueError:
            raise CheckFailed(f"{check.path} holds no PEM certificate") from None
        return _remaining(cert, check, check.path, now)
    assert check.host is not None
    port = check.port or 443
    where = f"{check.host}:{port}"
    ctx = ssl.create_default_context()
    try:
        with (
            socket.create_connection((check.host, port), timeout=check.timeout) as raw,
            ctx.wrap_socket(raw, server_hostname=check.server_name or check.host) as conn,
        ):
            der = conn.getpeercert(binary_form=True)
    except ssl.SSLCertVerificationError as exc:
        raise CheckFailed(f"{where}: certificate not trusted: {exc.verify_message}") from None
    except (OSError, ssl.SSLError) as exc:
        raise CheckFailed(f"{where}: {type(exc).__name__}: {exc}") from None
    if not der:
        raise CheckFailed(f"{where}: the server sent no certificate")
    return _remaining(x509.load_der_x509_certificate(der), check, where, now)
