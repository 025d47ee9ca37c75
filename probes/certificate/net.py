"""The network side of the certificate probe: DNS A record, CDP/OCSP reachability, fetching the
certificate the RMX presents. Every operation is bounded by the caller's absolute deadline."""

from __future__ import annotations

import ipaddress
import socket
import time
from typing import Any

from cryptography import x509

from probes import resolve
from probes.certificate.checks import aia_urls, cdp_urls
from probes.certificate.load import Material, well_formed
from probes.model import ErrorKind, Finding, InputError, Severity

DNS_TIMEOUT = 5.0
HTTP_TIMEOUT = 5.0
CRL_MAX_BYTES = 10 * 1024 * 1024  # a big enterprise CRL is a few MiB; reading more proves nothing


def _left(deadline: float, cap: float) -> float:
    return max(0.05, min(cap, deadline - time.monotonic()))


def dns_findings(fqdn: str, signaling_ip: str, deadline: float) -> list[Finding]:
    """CERT_DNS_MISMATCH when the FQDN's A (or AAAA) record is not the signaling IP."""
    try:
        wanted = ipaddress.ip_address(signaling_ip)
    except ValueError:
        raise InputError(f"--signaling-ip: '{signaling_ip}' is not an IP address") from None
    family = socket.AF_INET if wanted.version == 4 else socket.AF_INET6
    ev: dict[str, Any] = {"fqdn": fqdn, "signaling_ip": str(wanted), "resolved": []}
    try:
        found = resolve.addresses(fqdn, 0, min(deadline, time.monotonic() + DNS_TIMEOUT), family=family)
    except resolve.ResolveError as exc:
        return [Finding("CERT_DNS_MISMATCH", Severity.CRITICAL, f"'{fqdn}' does not resolve: {exc.why}",
                        {**ev, "reason": "unresolved"})]
    addresses = sorted({str(sockaddr[0]) for _, sockaddr in found})
    ev["resolved"] = addresses
    if str(wanted) not in addresses:
        return [Finding("CERT_DNS_MISMATCH", Severity.CRITICAL,
                        f"'{fqdn}' resolves to {', '.join(addresses)}, not to the signaling IP {wanted}",
                        {**ev, "reason": "other_address"})]
    return [Finding("CERT_DNS_OK", Severity.INFO, f"'{fqdn}' resolves to the signaling IP {wanted}", ev)]


def _fetch(url: str, deadline: float) -> tuple[int | None, str]:
    """(HTTP status, detail) of a bounded GET, reading at most CRL_MAX_BYTES."""
    import requests

    try:
        timeout = _left(deadline, HTTP_TIMEOUT)
        with requests.get(url, timeout=(timeout, timeout), stream=True, allow_redirects=True) as resp:
            size = 0
            for chunk in resp.iter_content(65536):
                size += len(chunk)
                if size >= CRL_MAX_BYTES or time.monotonic() > deadline:
                    break
            return resp.status_code, f"HTTP {resp.status_code}, {size} bytes read"
    except requests.RequestException as exc:
        return None, type(exc).__name__


def revocation_findings(cert: x509.Certificate, deadline: float) -> list[Finding]:
    """CERT_REVOCATION_UNREACHABLE for each CDP (needs a 2xx) or OCSP URL (any HTTP answer)."""
    out: list[Finding] = []
    targets = [("cdp", u) for u in cdp_urls(cert)] + [("ocsp", u) for u in aia_urls(cert)["ocsp"]]
    for kind, url in targets:
        ev = {"url": url, "kind": kind, "subject": cert.subject.rfc4514_string()}
        if not url.lower().startswith(("http://", "https://")):
            out.append(Finding("CERT_NOTE_REVOCATION_SKIPPED", Severity.INFO,
                               f"{kind.upper()} {url} not checked (only HTTP(S) is fetched)", ev))
            continue
        if time.monotonic() >= deadline:
            out.append(Finding("CERT_NOTE_REVOCATION_SKIPPED", Severity.INFO,
                               f"{kind.upper()} {url} not checked: the probe deadline passed", ev))
            continue
        status, detail = _fetch(url, deadline)
        reachable = status is not None and (kind == "ocsp" or 200 <= status < 300)
        if reachable:
            out.append(Finding("CERT_REVOCATION_OK", Severity.INFO, f"{kind.upper()} {url} reachable ({detail})", ev))
        else:
            out.append(Finding("CERT_REVOCATION_UNREACHABLE", Severity.WARNING,
                               f"{kind.upper()} {url} unreachable ({detail})", {**ev, "reason": detail}))
    return out


def fetch_presented(address: str, deadline: float) -> Material:
    """The certificate the RMX presents on its TLS listener ``host:port`` (leaf only)."""
    import ssl

    host, _, port_text = address.rpartition(":")
    if not host or not port_text.isdigit():
        raise InputError(f"certificate fetch_address: '{address}' is not host:port")
    host = host.strip("[]")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    # reviewed: deliberately unverified: the point is to look at whatever certificate the RMX presents,
    # including the factory self-signed one that no trust store accepts.
    context.check_hostname = False  # reviewed: see above (fetch only, nothing is sent)
    context.verify_mode = ssl.CERT_NONE  # reviewed: see above
    try:
        with socket.create_connection((host, int(port_text)), timeout=_left(deadline, 10.0)) as raw:
            raw.settimeout(_left(deadline, 10.0))
            with context.wrap_socket(raw, server_hostname=host) as tls:
                der = tls.getpeercert(binary_form=True)
    except (OSError, ssl.SSLError) as exc:
        raise InputError(f"certificate fetch from {address}: {type(exc).__name__}: {exc.strerror or exc}",
                         ErrorKind.UPSTREAM) from None
    if not der:
        raise InputError(f"certificate fetch from {address}: the server presented no certificate",
                         ErrorKind.UPSTREAM)
    try:
        leaf = x509.load_der_x509_certificate(der)
    except (ValueError, x509.InvalidVersion):
        raise InputError(f"certificate fetch from {address}: the server's certificate does not parse",
                         ErrorKind.UPSTREAM) from None
    return Material(address, "fetch", leaf=well_formed([leaf], address)[0])
