"""Wire-level helpers of the lab Front End: TLS settings as Lync/Schannel peers use them, SIP framing.

Standard library only (the lab must run with nothing but Python). ``set_client_ca_list`` reaches
into OpenSSL through ctypes because Python's ssl has no API for the CertificateRequest CA list.
"""

from __future__ import annotations

import ctypes
import logging
import ssl
import sys
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

log = logging.getLogger("rmxdiag.lab.registrar")

TLS_VERSIONS = {"1.0": ssl.TLSVersion.TLSv1, "1.1": ssl.TLSVersion.TLSv1_1,
                "1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}

# X509 verify codes that mean "I do not trust this issuer": Schannel resets the connection for
# these rather than sending unknown_ca (field traces: WSAECONNRESET, ms-diagnostics 1047).
UNTRUSTED_CHAIN_CODES = frozenset({
    2,  # unable to get issuer certificate
    18,  # self-signed leaf (the RMX factory certificate)
    19,  # self-signed certificate in chain
    20,  # unable to get local issuer certificate
    21,  # unable to verify the first certificate
})

# OpenSSL answers a client certificate without the clientAuth EKU (verify code 26, invalid
# purpose) with unsupported_certificate (43); Schannel-era peers send certificate_unknown (46),
# the alert a missing Client Authentication EKU typically causes. Swapped only while the alert is plaintext.
SCHANNEL_ALERT_FOR_VERIFY_CODE = {26: 46}
MAX_SIP_MESSAGE = 64 * 1024


def set_tls_window(ctx: ssl.SSLContext, tls_min: str, tls_max: str) -> None:
    """Set the TLS version window, legacy versions included (old RMX firmware and Lync 2013 need 1.0)."""
    with warnings.catch_warnings():
        # Python deprecates TLS 1.0/1.1 constants; the lab reproduces peers that still use them.
        warnings.simplefilter("ignore", DeprecationWarning)
        ctx.minimum_version = TLS_VERSIONS[tls_min]
        ctx.maximum_version = TLS_VERSIONS[tls_max]
    if TLS_VERSIONS[tls_min] < ssl.TLSVersion.TLSv1_2:
        # OpenSSL 3 refuses TLS 1.0/1.1 (SHA-1 in the handshake) above security level 0.
        ctx.set_ciphers("DEFAULT:@SECLEVEL=0")


def set_client_ca_list(ctx: ssl.SSLContext, cafile: Path) -> bool:
    """Name the trusted CAs in the CertificateRequest, as a Front End does.

    Python's ssl never calls ``SSL_CTX_set_client_CA_list``, so its servers send an empty CA
    list. We call it through ctypes on the ``SSL_CTX`` that CPython keeps right after the object
    header of an SSLContext; the pointer is checked first (its verify mode must read back what
    Python set) so a different interpreter layout degrades to an empty list, never a crash.
    """
    if sys.implementation.name != "cpython":
        return False
    try:
        import _ssl

        lib = ctypes.CDLL(_ssl.__file__)
        lib.SSL_CTX_get_verify_mode.argtypes = [ctypes.c_void_p]
        lib.SSL_CTX_get_verify_mode.restype = ctypes.c_int
        lib.SSL_load_client_CA_file.argtypes = [ctypes.c_char_p]
        lib.SSL_load_client_CA_file.restype = ctypes.c_void_p
        lib.SSL_CTX_set_client_CA_list.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
        lib.SSL_CTX_set_client_CA_list.restype = None
        ptr = ctypes.c_void_p.from_address(id(ctx) + object.__basicsize__).value
        saved = ctx.verify_mode
        ctx.verify_mode = ssl.CERT_OPTIONAL
        ok = bool(ptr) and lib.SSL_CTX_get_verify_mode(ptr) == 1
        ctx.verify_mode = ssl.CERT_REQUIRED
        ok = ok and lib.SSL_CTX_get_verify_mode(ptr) == 3
        ctx.verify_mode = saved
        if not ok:
            return False
        names = lib.SSL_load_client_CA_file(str(cafile).encode())
        if not names:
            return False
        lib.SSL_CTX_set_client_CA_list(ptr, names)  # takes ownership of the stack
        return True
    except (OSError, AttributeError) as exc:
        log.warning("lab registrar: cannot set the CertificateRequest CA list (%s)", type(exc).__name__)
        return False


def common_name(peer: dict[str, Any] | None) -> str | None:
    """The subject CN of a ``getpeercert()`` dict, if any."""
    for rdn in (peer or {}).get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                return str(value)
    return None


def take_sip_message(buf: bytearray) -> bytes | None:
    """Remove and return one complete SIP message (headers + Content-Length body) from ``buf``.

    Leading CRLF keep-alives are dropped (RFC 5626 §3.5.1); None when ``buf`` holds no complete
    message yet. A missing or unparsable Content-Length counts as 0 (RFC 3261 §18.3 requires it
    over TCP; the peer's next bytes then read as a new message).
    """
    while buf[:2] == b"\r\n":
        del buf[:2]
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        return None
    length = 0
    for line in bytes(buf[:end]).decode("utf-8", "replace").split("\r\n")[1:]:
        key, _, value = line.partition(":")
        if key.strip().lower() in ("content-length", "l") and value.strip().isdigit():
            length = int(value.strip())
    total = end + 4 + length
    if len(buf) < total:
        return None
    message = bytes(buf[:total])
    del buf[:total]
    return message


def sip_response(request: bytes, status: int, reason: str, extra: Iterable[str] = (),
                 to_tag: str = "labfe") -> bytes:
    """A SIP response echoing the request's Via/From/To/Call-ID/CSeq (RFC 3261 §8.2.6.2)."""
    lines = request.split(b"\r\n\r\n", 1)[0].decode("utf-8", "replace").split("\r\n")
    out = [f"SIP/2.0 {status} {reason}"]
    for line in lines[1:]:
        key = line.partition(":")[0].strip().lower()
        if key in ("via", "v", "from", "f", "call-id", "i", "cseq"):
            out.append(line)
        elif key in ("to", "t"):
            out.append(line if ";tag=" in line.lower() else f"{line};tag={to_tag}")
    out += ["Server: RTC/5.0 (rmxdiag lab Front End)", *extra, "Content-Length: 0"]
    return ("\r\n".join(out) + "\r\n\r\n").encode()
