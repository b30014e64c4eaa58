"""What a drill checks in a ``system`` component's restored files once every component is restored:
``nginx -t`` of the nginx configuration (:mod:`.nginx`), and the certificates (the ones nginx names, and
Let's Encrypt's ``live/*/cert.pem``) read with ``cryptography.x509``: the names they are for and how long
they remain valid. Restored files are untrusted: at most :data:`MAX_CERT` bytes of a certificate are
read, and what does not parse is reported, never trusted."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from typing import Any, Protocol

from cryptography import x509
from cryptography.x509.oid import NameOID

from safehold.sources.base import Finding
from safehold.sources.sandboxpath import OutsideSandbox, Where, locate
from safehold.sources.system.nginx import check_nginx


class SystemComponent(Protocol):
    """What the checks read of a ``system`` component (its name, options and layout)."""

    name: str
    options: Any

    def sandbox_path(self, path: str) -> str | None: ...


MAX_CERT = 1 << 20


def restored_checks(source: SystemComponent, root: Path, where: Where) -> list[Finding]:
    """``nginx -t`` of the restored nginx configuration (:mod:`.nginx`: safe as root), and the expiry
    dates of the certificates it names and of Let's Encrypt's ``live/*/cert.pem``."""
    live_root = os.path.normpath(source.options.root)
    findings: list[Finding] = []
    certs: list[tuple[str, Path]] = []
    conf = "/etc/nginx/nginx.conf"
    if source.options.nginx and _restored(source, _below(live_root, conf), where, root) is not None:
        work = root / f".check-{source.name}"
        found, check = check_nginx(source.name, conf, where, root, work, live_root)
        findings += found
        certs += [(live, p) for live, p in check.certificates if not p.is_relative_to(work) and p.is_file()]
    le = "/etc/letsencrypt/live"
    # the restored folder of this component's letsencrypt collector (its patterns may name single hosts)
    folder = root / source.name / "letsencrypt" / os.path.relpath(_below(live_root, le), live_root)
    if source.options.letsencrypt and folder.is_dir() and not folder.is_symlink():
        for host in sorted(os.listdir(folder)):
            if not host.isprintable():
                continue
            cert = _restored(source, _below(live_root, f"{le}/{host}/cert.pem"), where, root)
            if cert is not None and cert.is_file():
                certs.append((f"{le}/{host}/cert.pem", cert))
    seen: set[Path] = set()
    for live, path in certs:
        if path.resolve() not in seen:
            seen.add(path.resolve())
            findings.append(certificate_finding(source.name, live, path, source.options.certificate_min_days))
    return findings


def _restored(source: SystemComponent, live: str, where: Where, root: Path) -> Path | None:
    """The restored copy of ``live`` when this component holds it and it was restored."""
    if source.sandbox_path(live) is None:
        return None
    try:
        found = locate(live, where, root)
    except (OutsideSandbox, OSError):
        return None
    return found if os.path.lexists(found) else None


def _below(root: str, path: str) -> str:
    return os.path.normpath(os.path.join(root, path.lstrip("/")))


def _names(cert: x509.Certificate) -> list[str]:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = [str(n) for n in san.get_values_for_type(x509.DNSName)]
    except (x509.ExtensionNotFound, ValueError):
        names = []
    return names or [str(a.value) for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]


def certificate_finding(
    subject: str, live: str, path: Path, min_days: int, now: dt.datetime | None = None
) -> Finding:
    """The first certificate in the PEM file ``path`` (the restored copy of ``live``): ok while it is
    valid for at least ``min_days`` more days; a finding when it is expired, expires sooner, is not yet
    valid or does not parse."""
    now = now or dt.datetime.now(dt.UTC)
    try:
        with path.open("rb") as f:
            data = f.read(MAX_CERT + 1)
        if len(data) > MAX_CERT:
            raise ValueError("too large")
        cert = x509.load_pem_x509_certificates(data)[0]
        after, before = cert.not_valid_after_utc, cert.not_valid_before_utc
    except (OSError, ValueError) as exc:
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else "no PEM certificate in it"
        return Finding(subject, "certificate", False, f"certificate {live}: {why}")
    names = ", ".join(_names(cert)[:3])[:200].replace("\n", " ")
    until = f"{after:%Y-%m-%d}"
    left = after - now
    what = f"certificate {live} ({names})"
    if before > now:
        return Finding(subject, "certificate", False, f"{what}: not valid before {before:%Y-%m-%d}")
    if left.total_seconds() <= 0:
        return Finding(subject, "certificate", False, f"{what}: expired on {until}")
    if left < dt.timedelta(days=min_days):
        return Finding(
            subject,
            "certificate",
            False,
            f"{what}: expires in {left.days} day(s) ({until}), less than the {min_days} required",
            "Renew it ('certbot renew'); a restore would bring back a certificate about to expire.",
        )
    return Finding(subject, "certificate", True, f"{what}: valid until {until} ({left.days} days)")
