"""The closed (stage, reason) outcome of an MTLS probe, and its ONE mapping from errors to reasons.

Every way a probe of a registrar can end is a :class:`Stage` and a :class:`Reason`. Reasons are
derived here only, from ``ssl.SSLError.reason`` (OpenSSL's reason name), the alert numbers the
handshake trace saw, ``SSLCertVerificationError.verify_code`` and ``OSError.errno``; never from
message text. :func:`hint_for` maps an outcome to its catalogue hint code (alerts through the one alert table of
:mod:`probes.tlswire`, shared with the capture probe).

Exception tree handled (CPython 3.11)::

    OSError
    ├── socket.gaierror                       -> resolve / dns_failure
    ├── ConnectionRefusedError (ECONNREFUSED) -> connect / refused
    ├── ConnectionResetError (ECONNRESET)     -> tls|sip / reset*
    └── ssl.SSLError (.reason)
        ├── SSLCertVerificationError (.verify_code) -> tls / server_cert_*
        ├── SSLEOFError, SSLZeroReturnError          -> tls|sip / closed*
        └── SSLSyscallError (.errno)                 -> as the errno
"""

from __future__ import annotations

import enum
import errno as errno_mod
from dataclasses import dataclass

from probes.model import Severity
from probes.resolve import ResolveError
from probes.tlswire import Alert, Sender, alert_hint


class Stage(enum.StrEnum):
    """Where the probe of one registrar stopped."""

    RESOLVE = "resolve"
    CONNECT = "connect"
    TLS = "tls"
    SIP = "sip"


class Reason(enum.StrEnum):
    """Why it stopped (closed set, label-safe). Add members, never rename."""

    OK = "ok"
    DNS_FAILURE = "dns_failure"
    DNS_TIMEOUT = "dns_timeout"
    REFUSED = "refused"
    TIMEOUT = "timeout"  # connect: SYN unanswered; sip: no answer in time
    UNREACHABLE = "unreachable"
    CONNECT_ERROR = "connect_error"
    NO_TLS_ANSWER = "no_answer"  # TCP up, not one byte of TLS back before the deadline
    STALLED = "stalled"  # the server started the handshake, then stopped (drip, CRL fetch)
    NOT_TLS = "not_tls"  # the server answered with something that is not TLS
    CLOSED = "closed"  # FIN without an alert (before our certificate, or in SIP)
    RESET = "reset"  # RST (before our certificate, or in SIP)
    CLOSED_AFTER_CLIENT_CERT = "closed_after_client_cert"
    RESET_AFTER_CLIENT_CERT = "reset_after_client_cert"
    ALERT_HANDSHAKE_FAILURE = "alert_handshake_failure"
    ALERT_BAD_CERTIFICATE = "alert_bad_certificate"
    ALERT_UNSUPPORTED_CERTIFICATE = "alert_unsupported_certificate"  # OpenSSL: client cert lacks clientAuth
    ALERT_CERTIFICATE_REVOKED = "alert_certificate_revoked"
    ALERT_CERTIFICATE_EXPIRED = "alert_certificate_expired"
    ALERT_CERTIFICATE_UNKNOWN = "alert_certificate_unknown"
    ALERT_UNKNOWN_CA = "alert_unknown_ca"
    ALERT_ACCESS_DENIED = "alert_access_denied"
    ALERT_DECRYPT_ERROR = "alert_decrypt_error"
    ALERT_PROTOCOL_VERSION = "alert_protocol_version"
    ALERT_INSUFFICIENT_SECURITY = "alert_insufficient_security"
    ALERT_CERTIFICATE_REQUIRED = "alert_certificate_required"
    ALERT_OTHER = "alert_other"
    SERVER_CERT_UNTRUSTED = "server_cert_untrusted"
    SERVER_CERT_NAME_MISMATCH = "server_cert_name_mismatch"
    SERVER_CERT_EXPIRED = "server_cert_expired"
    SERVER_CERT_NOT_YET_VALID = "server_cert_not_yet_valid"
    SERVER_CERT_INVALID = "server_cert_invalid"
    LOCAL_VERSION_REFUSED = "local_version_refused"  # OUR range refused the version the FE chose
    LOCAL_POLICY_REFUSED = "local_policy_refused"  # OUR security level refused key/signature/cipher
    HANDSHAKE_ERROR = "handshake_error"
    NOT_TRUSTED = "not_trusted"  # SIP 401/403
    ERROR_RESPONSE = "error_response"  # other SIP non-2xx
    BAD_RESPONSE = "bad_response"  # not a SIP response
    OVERLOADED = "overloaded"  # rmxdiag (or the run) was too busy: no verdict on the registrar


_ALERT_REASON: dict[int, Reason] = {
    40: Reason.ALERT_HANDSHAKE_FAILURE, 42: Reason.ALERT_BAD_CERTIFICATE, 43: Reason.ALERT_UNSUPPORTED_CERTIFICATE,
    44: Reason.ALERT_CERTIFICATE_REVOKED, 45: Reason.ALERT_CERTIFICATE_EXPIRED,
    46: Reason.ALERT_CERTIFICATE_UNKNOWN, 48: Reason.ALERT_UNKNOWN_CA, 49: Reason.ALERT_ACCESS_DENIED,
    51: Reason.ALERT_DECRYPT_ERROR, 70: Reason.ALERT_PROTOCOL_VERSION,
    71: Reason.ALERT_INSUFFICIENT_SECURITY, 116: Reason.ALERT_CERTIFICATE_REQUIRED,
}

# OpenSSL reason names of a *received* alert -> alert number (used when the trace missed it).
_SSL_REASON_ALERT: dict[str, int] = {
    "SSLV3_ALERT_HANDSHAKE_FAILURE": 40, "SSLV3_ALERT_BAD_CERTIFICATE": 42,
    "SSLV3_ALERT_UNSUPPORTED_CERTIFICATE": 43, "SSLV3_ALERT_CERTIFICATE_REVOKED": 44,
    "SSLV3_ALERT_CERTIFICATE_EXPIRED": 45, "SSLV3_ALERT_CERTIFICATE_UNKNOWN": 46,
    "SSLV3_ALERT_ILLEGAL_PARAMETER": 47, "TLSV1_ALERT_UNKNOWN_CA": 48, "TLSV1_ALERT_ACCESS_DENIED": 49,
    "TLSV1_ALERT_DECODE_ERROR": 50, "TLSV1_ALERT_DECRYPT_ERROR": 51, "TLSV1_ALERT_PROTOCOL_VERSION": 70,
    "TLSV1_ALERT_INSUFFICIENT_SECURITY": 71, "TLSV1_ALERT_INTERNAL_ERROR": 80,
    "TLSV1_UNRECOGNIZED_NAME": 112, "TLSV13_ALERT_CERTIFICATE_REQUIRED": 116,
    "TLSV13_ALERT_MISSING_EXTENSION": 109,
}

# OpenSSL reasons raised when OUR OWN configuration refused what the server offered.
_LOCAL_VERSION = frozenset({"UNSUPPORTED_PROTOCOL", "NO_PROTOCOLS_AVAILABLE", "WRONG_SSL_VERSION",
                            "VERSION_TOO_LOW", "VERSION_TOO_HIGH", "TLSV1_ALERT_INAPPROPRIATE_FALLBACK"})
_LOCAL_POLICY = frozenset({"NO_CIPHERS_AVAILABLE", "WRONG_CIPHER_RETURNED", "EE_KEY_TOO_SMALL",
                           "CA_KEY_TOO_SMALL", "CA_MD_TOO_WEAK", "DH_KEY_TOO_SMALL",
                           "LEGACY_SIGALG_DISALLOWED_OR_UNSUPPORTED", "WRONG_SIGNATURE_TYPE",
                           "NO_SUITABLE_SIGNATURE_ALGORITHM", "WRONG_CURVE", "BAD_DH_VALUE",
                           # OpenSSL's own cap on a peer's certificate list (100 KB): our limit too
                           "EXCESSIVE_MESSAGE_SIZE"})
# The server's bytes are not a TLS record: an HTTP server, a SIP-over-TCP port, ...
_NOT_TLS = frozenset({"WRONG_VERSION_NUMBER", "HTTP_REQUEST", "HTTPS_PROXY_REQUEST",
                      "PACKET_LENGTH_TOO_LONG", "RECORD_LENGTH_MISMATCH", "UNKNOWN_PROTOCOL"})

# X509_V_ERR_* codes of our verification of the FE chain.
_VERIFY_REASON: dict[int, Reason] = {
    2: Reason.SERVER_CERT_UNTRUSTED,  # unable to get issuer certificate
    18: Reason.SERVER_CERT_UNTRUSTED,  # depth zero self-signed
    19: Reason.SERVER_CERT_UNTRUSTED,  # self-signed certificate in chain
    20: Reason.SERVER_CERT_UNTRUSTED,  # unable to get local issuer certificate
    21: Reason.SERVER_CERT_UNTRUSTED,  # unable to verify the first certificate
    24: Reason.SERVER_CERT_INVALID,  # invalid CA certificate (an issuer without CA:TRUE): the FE side must fix it
    27: Reason.SERVER_CERT_UNTRUSTED,  # certificate not trusted
    9: Reason.SERVER_CERT_NOT_YET_VALID,
    10: Reason.SERVER_CERT_EXPIRED,
    62: Reason.SERVER_CERT_NAME_MISMATCH,  # hostname mismatch
    64: Reason.SERVER_CERT_NAME_MISMATCH,  # IP address mismatch
    66: Reason.LOCAL_POLICY_REFUSED,  # EE key too small (our security level)
    67: Reason.LOCAL_POLICY_REFUSED,  # CA key too small
    68: Reason.LOCAL_POLICY_REFUSED,  # CA signature digest too weak (SHA-1 at level >= 1)
}

_CONNECT_ERRNO: dict[int, Reason] = {
    errno_mod.ECONNREFUSED: Reason.REFUSED, errno_mod.ETIMEDOUT: Reason.TIMEOUT,
    errno_mod.EHOSTUNREACH: Reason.UNREACHABLE, errno_mod.ENETUNREACH: Reason.UNREACHABLE,
    errno_mod.EHOSTDOWN: Reason.UNREACHABLE, errno_mod.ECONNRESET: Reason.RESET,
}

_RESET_ERRNOS = frozenset({errno_mod.ECONNRESET, errno_mod.EPIPE, errno_mod.ECONNABORTED})


def alert_reason(number: int) -> Reason:
    """The reason of a fatal alert received from the Front End."""
    return _ALERT_REASON.get(number, Reason.ALERT_OTHER)


def alert_from_ssl_reason(ssl_reason: str | None) -> int | None:
    """The alert number behind an OpenSSL 'alert received' reason name, if it is one."""
    return _SSL_REASON_ALERT.get(ssl_reason or "")


def verify_reason(verify_code: int) -> Reason:
    """The reason of OUR failed verification of the FE chain (``X509_V_ERR_*``)."""
    return _VERIFY_REASON.get(verify_code, Reason.SERVER_CERT_INVALID)


def connect_reason(errno: int | None) -> Reason:
    """The reason of a failed TCP connect."""
    return _CONNECT_ERRNO.get(errno or 0, Reason.CONNECT_ERROR)


def resolve_reason(exc: ResolveError) -> Reason:
    """The reason of a failed name resolution: no answer in time, or a negative answer."""
    return Reason.DNS_TIMEOUT if exc.timeout else Reason.DNS_FAILURE


def is_reset(exc: OSError) -> bool:
    """True when the error is the peer resetting (RST) the connection, not closing it."""
    return isinstance(exc, ConnectionResetError) or exc.errno in _RESET_ERRNOS


def ssl_reason_class(ssl_reason: str | None) -> Reason | None:
    """Local policy / not-TLS reasons from an OpenSSL reason name; None when it says neither."""
    name = ssl_reason or ""
    if name in _LOCAL_VERSION:
        return Reason.LOCAL_VERSION_REFUSED
    if name in _LOCAL_POLICY:
        return Reason.LOCAL_POLICY_REFUSED
    if name in _NOT_TLS:
        return Reason.NOT_TLS
    return None


def sent_alert_reason(alert_sent: int | None) -> Reason:
    """The reason when OUR side aborted with ``alert_sent`` for a cause OpenSSL did not name.

    70 protocol_version, 40 handshake_failure and 71 insufficient_security from us mean our own
    range or security level refused the offer; any other alert we send means the server's
    handshake was malformed.
    """
    if alert_sent == 70:
        return Reason.LOCAL_VERSION_REFUSED
    if alert_sent in (40, 71):
        return Reason.LOCAL_POLICY_REFUSED
    return Reason.HANDSHAKE_ERROR


def sip_reason(status: int) -> Reason:
    """The reason of a SIP final answer."""
    if 200 <= status < 300:
        return Reason.OK
    if status in (401, 403):
        return Reason.NOT_TRUSTED
    return Reason.ERROR_RESPONSE


@dataclass(frozen=True)
class HintRef:
    """A catalogue code and its severity (checked against the catalogue by a unit test)."""

    code: str
    severity: Severity


_C, _W = Severity.CRITICAL, Severity.WARNING
# Outcomes other than a received alert (those go through the one alert table, see hint_for).
_HINTS: dict[Reason, HintRef] = {
    Reason.DNS_FAILURE: HintRef("REGISTRAR_DNS_FAILURE", _C),
    Reason.DNS_TIMEOUT: HintRef("REGISTRAR_DNS_FAILURE", _C),
    Reason.REFUSED: HintRef("REGISTRAR_UNREACHABLE", _C),
    Reason.UNREACHABLE: HintRef("REGISTRAR_UNREACHABLE", _C),
    Reason.CONNECT_ERROR: HintRef("REGISTRAR_UNREACHABLE", _C),
    Reason.NO_TLS_ANSWER: HintRef("REGISTRAR_TLS_TIMEOUT", _C),
    Reason.STALLED: HintRef("REGISTRAR_TLS_TIMEOUT", _C),
    Reason.NOT_TLS: HintRef("TLS_PORT_NOT_TLS", _C),  # answered at once, with bytes that are not TLS
    Reason.CLOSED_AFTER_CLIENT_CERT: HintRef("CLIENT_CERT_REJECTED", _C),
    Reason.RESET_AFTER_CLIENT_CERT: HintRef("CLIENT_CERT_REJECTED", _C),
    Reason.SERVER_CERT_UNTRUSTED: HintRef("REGISTRAR_CERT_UNTRUSTED", _C),
    Reason.SERVER_CERT_INVALID: HintRef("REGISTRAR_CERT_INVALID", _C),
    Reason.SERVER_CERT_NAME_MISMATCH: HintRef("REGISTRAR_CERT_NAME_MISMATCH", _C),
    Reason.SERVER_CERT_EXPIRED: HintRef("REGISTRAR_CERT_EXPIRED", _C),
    Reason.SERVER_CERT_NOT_YET_VALID: HintRef("REGISTRAR_CERT_EXPIRED", _C),
    Reason.LOCAL_VERSION_REFUSED: HintRef("TLS_VERSION_MISMATCH", _C),
    Reason.LOCAL_POLICY_REFUSED: HintRef("TLS_LOCAL_POLICY", _W),
    Reason.HANDSHAKE_ERROR: HintRef("TLS_HANDSHAKE_FAILURE", _C),
    Reason.NOT_TRUSTED: HintRef("SIP_NOT_TRUSTED", _C),
    Reason.ERROR_RESPONSE: HintRef("SIP_ERROR_RESPONSE", _W),
    Reason.BAD_RESPONSE: HintRef("SIP_ERROR_RESPONSE", _W),
}
_REASON_ALERT = {reason: number for number, reason in _ALERT_REASON.items()}


def hint_for(stage: Stage, reason: Reason, *, alert: int | None = None,
             after_client_cert: bool = False) -> HintRef | None:
    """The catalogue hint of an outcome (None for success).

    An alert received from the Front End (``alert``: its number; derived from ``reason`` when
    None) goes through the one alert table every probe uses (:func:`probes.tlswire.alert_hint`);
    ``after_client_cert``: it came after our Certificate flight, where a generic handshake_failure
    is the FE refusing our certificate (OpenSSL and Schannel send 40 for a missing or refused
    client certificate in TLS 1.2).
    """
    if reason in (Reason.OK, Reason.OVERLOADED):
        return None
    if stage is Stage.CONNECT and reason is Reason.TIMEOUT:
        return HintRef("REGISTRAR_UNREACHABLE", _C)
    if stage is Stage.CONNECT and reason is Reason.RESET:
        return HintRef("REGISTRAR_UNREACHABLE", _C)
    if stage is Stage.SIP and reason in (Reason.TIMEOUT, Reason.CLOSED, Reason.RESET):
        return HintRef("SIP_NO_RESPONSE", _C)
    if stage is Stage.TLS and reason in (Reason.TIMEOUT, Reason.CLOSED, Reason.RESET):
        # FIN/RST before our certificate went out: the FE dropped the ClientHello (or a middlebox).
        return HintRef("REGISTRAR_TLS_TIMEOUT" if reason is Reason.TIMEOUT else "TLS_HANDSHAKE_FAILURE", _C)
    if reason.value.startswith("alert_"):
        number = alert if alert is not None else _REASON_ALERT.get(reason)
        code = alert_hint(Alert(number, Sender.FE), after_client_cert=after_client_cert) if number else None
        # An alert the table does not know still ended the handshake.
        return HintRef(code or "TLS_HANDSHAKE_FAILURE", _C)
    return _HINTS.get(reason, HintRef("TLS_HANDSHAKE_FAILURE", _C))
