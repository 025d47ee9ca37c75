"""The hint catalogue: every hint code, its severity, meaning and remediation, in one place.

Codes are API (reports, metrics labels, alert rules use them): add, never rename.
:class:`HintCode` is their one enumeration, :data:`CATALOGUE` their one description (an import-time
check keeps both in step), and :data:`FOLDS_INTO` says which other root cause may explain each one
(the diagnosis may fold a finding into those, never into another). ``rmxdiag hints`` and the
README's hint reference and routing table are generated from them. Remediation steps may name firmware-specific RMX
menus through placeholders resolved by :func:`remediation`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from probes.model import Severity


class HintCode(enum.StrEnum):
    """Every hint code (API: add members, never rename one). Each has exactly one entry below."""

    CERT_SELF_SIGNED = "CERT_SELF_SIGNED"
    CERT_IS_REQUEST = "CERT_IS_REQUEST"
    CERT_IS_CA = "CERT_IS_CA"
    CERT_CN_MISMATCH = "CERT_CN_MISMATCH"
    CERT_SAN_PRESENT = "CERT_SAN_PRESENT"
    CERT_DNS_MISMATCH = "CERT_DNS_MISMATCH"
    CERT_EKU_MISSING = "CERT_EKU_MISSING"
    CERT_EXPIRED = "CERT_EXPIRED"
    CERT_NOT_YET_VALID = "CERT_NOT_YET_VALID"
    CERT_EXPIRING_SOON = "CERT_EXPIRING_SOON"
    CERT_WEAK_KEY = "CERT_WEAK_KEY"
    CERT_SIGNATURE_UNSUPPORTED = "CERT_SIGNATURE_UNSUPPORTED"
    CERT_KEY_MISMATCH = "CERT_KEY_MISMATCH"
    CERT_CHAIN_INCOMPLETE = "CERT_CHAIN_INCOMPLETE"
    CERT_NO_CDP = "CERT_NO_CDP"
    CERT_REVOCATION_UNREACHABLE = "CERT_REVOCATION_UNREACHABLE"
    PFX_BAD_PASSWORD = "PFX_BAD_PASSWORD"  # noqa: S105 (a hint code, not a secret)
    REGISTRAR_DNS_FAILURE = "REGISTRAR_DNS_FAILURE"
    REGISTRAR_UNREACHABLE = "REGISTRAR_UNREACHABLE"
    REGISTRAR_TLS_TIMEOUT = "REGISTRAR_TLS_TIMEOUT"
    REGISTRAR_CERT_UNTRUSTED = "REGISTRAR_CERT_UNTRUSTED"
    REGISTRAR_CERT_NAME_MISMATCH = "REGISTRAR_CERT_NAME_MISMATCH"
    REGISTRAR_CERT_EXPIRED = "REGISTRAR_CERT_EXPIRED"
    REGISTRAR_CERT_INVALID = "REGISTRAR_CERT_INVALID"
    CLIENT_CERT_NOT_REQUESTED = "CLIENT_CERT_NOT_REQUESTED"
    CLIENT_CERT_UNKNOWN_CA = "CLIENT_CERT_UNKNOWN_CA"
    CLIENT_CERT_REJECTED = "CLIENT_CERT_REJECTED"
    TLS_VERSION_MISMATCH = "TLS_VERSION_MISMATCH"
    TLS_HANDSHAKE_FAILURE = "TLS_HANDSHAKE_FAILURE"
    SIP_NOT_TRUSTED = "SIP_NOT_TRUSTED"
    SIP_NO_RESPONSE = "SIP_NO_RESPONSE"
    SIP_ERROR_RESPONSE = "SIP_ERROR_RESPONSE"
    RMX_ALARM_REGISTRATION = "RMX_ALARM_REGISTRATION"
    RMX_ALARM_CERTIFICATE = "RMX_ALARM_CERTIFICATE"
    ALARM_UNCORROBORATED = "ALARM_UNCORROBORATED"
    CAPTURE_TLS_ALERT = "CAPTURE_TLS_ALERT"
    CAPTURE_EMPTY_CLIENT_CERT = "CAPTURE_EMPTY_CLIENT_CERT"
    CAPTURE_RESET_AFTER_CLIENT_CERT = "CAPTURE_RESET_AFTER_CLIENT_CERT"
    CAPTURE_NO_SERVER_RESPONSE = "CAPTURE_NO_SERVER_RESPONSE"
    CAPTURE_TRUNCATED_CA_LIST = "CAPTURE_TRUNCATED_CA_LIST"
    TLS_LOCAL_POLICY = "TLS_LOCAL_POLICY"
    CAPTURE_INCOMPLETE = "CAPTURE_INCOMPLETE"
    PFX_ENCRYPTION_UNSUPPORTED = "PFX_ENCRYPTION_UNSUPPORTED"
    TLS_PORT_NOT_TLS = "TLS_PORT_NOT_TLS"


class FixPlace(enum.StrEnum):
    """Where a hint's fix is made (JSON ``fix_on``; API: add members, never rename one)."""

    FRONT_END = "front_end"  # a Front End server or the Lync/SfB topology (Management Shell, certlm.msc)
    RMX = "rmx"  # RMX Manager: certificates, trusted CAs, IP Network Service, firmware
    CA = "ca"  # the certification authority: a new or reissued certificate, CDP publication
    DNS = "dns"  # DNS records
    NETWORK = "network"  # addresses, ports, firewalls, load balancers between the RMX and the pool
    CAPTURE = "capture"  # the capture itself: take it again

    @property
    def label(self) -> str:
        """How the text report names the place."""
        return _PLACE_LABELS[self]


_PLACE_LABELS = {FixPlace.FRONT_END: "the Front End", FixPlace.RMX: "the RMX", FixPlace.CA: "the CA",
                 FixPlace.DNS: "DNS", FixPlace.NETWORK: "the network", FixPlace.CAPTURE: "the capture"}


class Firmware(enum.StrEnum):
    """RMX firmware family: certificate handling moved to its own menu in 8.1."""

    V7 = "7.x"
    V8 = "8.x"


# Where each firmware family keeps the SIP TLS certificate and the trusted CAs.
_MENUS: dict[Firmware, dict[str, str]] = {
    Firmware.V7: {
        "personal": "RMX Manager → IP Network Services → (your IP Network Service) → Properties → "
        "SIP Servers tab → Certificate Method (PFX, or the PEM files cert.pem, pkey.pem, "
        "rootCA.pem with certPassword.txt)",
        "trusted": "RMX Manager → IP Network Services → (your IP Network Service) → SIP Servers tab: "
        "put the root and every intermediate CA in rootCA.pem (or inside the PFX)",
        "revocation": "the RMX's SIP Servers settings (7.x has no revocation options: publish a "
        "reachable CDP instead)",
    },
    Firmware.V8: {
        "personal": "RMX Manager → Setup → RMX Secured Communication → Certification Repository → "
        "Personal Certificates → Add (Certificate Method PEM/PFX, enter the PFX password, "
        "Send Certificate)",
        "trusted": "RMX Manager → Setup → RMX Secured Communication → Certification Repository → "
        "Trusted Certificates → Add (root first, then each intermediate)",
        "revocation": "RMX Manager → IP Network Services → (your IP Network Service) → SIP Servers: "
        "Revocation Method (NONE / CRL / OCSP) and the OCSP responder URL",
    },
}


@dataclass(frozen=True)
class HintSpec:
    """One catalogue entry. ``steps`` may contain ``{personal}``, ``{trusted}``, ``{revocation}``."""

    code: HintCode
    severity: Severity
    title: str
    meaning: str
    steps: tuple[str, ...]


_REBOOT = "Reboot the RMX when RMX Manager asks: the SIP TLS certificate is only used after a reboot."
_FE_ROOT = (
    "On every Front End of the pool import the root CA into Local Computer → Trusted Root "
    "Certification Authorities and each intermediate into Intermediate Certification Authorities "
    "(certlm.msc); never put a subordinate CA into Trusted Root."
)
_REISSUE = (
    "Request a new certificate for the RMX signaling FQDN from a template with Server "
    "Authentication and Client Authentication EKUs, RSA 2048-bit or more, RSA PKCS#1 SHA-256 "
    "(or SHA-1), and a CRL distribution point."
)
# Ordered: the topology objects are created pool -> computer -> application, then published.
_TRUSTED_APP: tuple[str, ...] = (
    "In the Lync/Skype for Business Management Shell check what the topology knows: "
    "Get-CsTrustedApplicationComputer | Where-Object Identity -eq <RMX signaling FQDN> (the FQDN must be "
    "exactly the CN of the RMX certificate).",
    "If there is no trusted application pool yet: New-CsTrustedApplicationPool -Identity <trusted application "
    "pool FQDN> -Registrar <registrar pool FQDN> -Site <site id> -RequiresReplication $false -ThrottleAsServer "
    "$true -TreatAsAuthenticated $true (one pool can hold the DMA and the RMX; the registrar is the Front End "
    "pool the RMX registers with).",
    "New-CsTrustedApplicationComputer -Identity <RMX signaling FQDN> -Pool <trusted application pool FQDN>.",
    "New-CsTrustedApplication -ApplicationId <id> -TrustedApplicationPoolFqdn <trusted application pool FQDN> "
    "-Port 5061.",
    "Publish the topology: Enable-CsTopology.",
)

_SPECS: tuple[HintSpec, ...] = (
    HintSpec(HintCode.CERT_SELF_SIGNED, Severity.CRITICAL, "The RMX uses a self-signed certificate",
             "The certificate is its own issuer (the RMX factory default: OU=Self Signed Certificate, "
             "O=Polycom MCU/RMX). No Front End trusts it, so every MTLS handshake fails.",
             ("Create a request for the RMX signaling FQDN and have your enterprise CA issue it.",
              "Import the issued certificate with its chain: {personal}.",
              "Make sure the Front Ends trust the issuing root. " + _FE_ROOT, _REBOOT)),
    HintSpec(HintCode.CERT_IS_REQUEST, Severity.CRITICAL, "A certificate request was given instead of a certificate",
             "The file is a PKCS#10 request (BEGIN CERTIFICATE REQUEST), not the certificate the CA "
             "issued for it. Pasting the request into Send Certificate is a classic mistake.",
             ("Take the certificate the CA returned (a .cer/.crt, P7B or PFX), not the request you sent.",
              "Convert it to Base-64 PEM (rmxdiag can extract the leaf) and paste that: {personal}.",
              _REBOOT)),
    HintSpec(HintCode.CERT_IS_CA, Severity.CRITICAL, "A CA certificate was given as the RMX certificate",
             "The certificate is a CA (basicConstraints CA:TRUE): an issuing/intermediate CA or a root "
             "pasted or exported by mistake instead of the certificate the CA issued for the RMX. The RMX "
             "cannot use it as its own: its name, EKUs and key are the CA's.",
             ("Take the certificate issued for the RMX signaling FQDN (CN = that FQDN, not the CA's name); "
              "in a PFX export, select the RMX's own certificate with its private key.",
              "Put the CA certificates where the chain belongs instead: {trusted}.",
              "Import the RMX certificate: {personal}.", _REBOOT)),
    HintSpec(HintCode.CERT_CN_MISMATCH, Severity.CRITICAL, "The certificate name does not match the RMX signaling FQDN",
             "The Front End takes the peer's name from its certificate (CN, or the SAN when one exists) "
             "and looks it up among trusted application computers; another name is refused.",
             ("Reissue the certificate with CN = the RMX signaling FQDN (the name of the signaling IP's A record).",
              "If a SAN is used at all, it must contain that FQDN.",
              "Make sure New-CsTrustedApplicationComputer uses the same FQDN.",
              "Import the new certificate: {personal}.", _REBOOT)),
    HintSpec(HintCode.CERT_SAN_PRESENT, Severity.WARNING, "The certificate carries a SAN (CN alone is advised)",
             "A SAN is present and contains the signaling FQDN, so names match; the usual RMX guidance "
             "is a CN-only certificate, and a SAN wins over the CN in TLS name checks.",
             ("Nothing to do if the SAN deliberately lists the FQDN (e.g. a super-cluster certificate).",
              "Otherwise reissue a CN-only certificate at the next renewal.")),
    HintSpec(HintCode.CERT_DNS_MISMATCH, Severity.CRITICAL, "The RMX FQDN does not resolve to its signaling IP",
             "The DNS A record of the certificate's FQDN must point at the RMX signaling IP (not the "
             "management IP); the Front End resolves it to reach the RMX.",
             ("Fix the A record of the RMX signaling FQDN to the signaling IP address.",
              "Flush DNS caches on the Front Ends (ipconfig /flushdns) and wait for replication.")),
    HintSpec(HintCode.CERT_EKU_MISSING, Severity.CRITICAL,
             "The certificate lacks the Client or Server Authentication EKU",
             "The RMX is the TLS client towards the Front End, so it needs Client Authentication "
             "(1.3.6.1.5.5.7.3.2) as well as Server Authentication (1.3.6.1.5.5.7.3.1). A missing EKU "
             "typically shows as alert 46 (certificate_unknown) or 42.",
             (_REISSUE, "Import the new certificate: {personal}.", _REBOOT)),
    HintSpec(HintCode.CERT_EXPIRED, Severity.CRITICAL, "The certificate has expired",
             "The validity period has ended (alert 45, ms-diagnostics 1013 when clocks disagree). "
             "Check the RMX and Front End clocks: skew looks exactly like expiry.",
             ("Renew the certificate with the CA and import it: {personal}.",
              "Check NTP on the RMX and the Front Ends (a wrong clock reads as expiry).", _REBOOT)),
    HintSpec(HintCode.CERT_NOT_YET_VALID, Severity.CRITICAL, "The certificate is not valid yet",
             "The validity period starts in the future. Almost always clock skew between the CA, the RMX "
             "and the Front End (alert 45, ms-diagnostics 1013).",
             ("Fix NTP on the RMX and the Front Ends.",
              "If the clocks are right, wait for the start date or reissue the certificate.")),
    HintSpec(HintCode.CERT_EXPIRING_SOON, Severity.WARNING, "The certificate expires soon",
             "Fewer days than the configured warning threshold remain.",
             ("Request the renewal now; import it before the expiry date: {personal}.",
              "Plan the reboot the RMX will ask for.")),
    HintSpec(HintCode.CERT_WEAK_KEY, Severity.WARNING, "The certificate key is weaker than RSA 2048 or not RSA",
             "An RSA key under 2048 bits is weak and refused by current Windows policies. The RMX and "
             "Lync/SfB use RSA keys: an EC key is untested there (warning); DSA, Ed25519, Ed448, GOST or "
             "an unknown key type cannot be used at all (critical).",
             (_REISSUE, "Import the new certificate: {personal}.")),
    HintSpec(HintCode.CERT_SIGNATURE_UNSUPPORTED, Severity.CRITICAL, "The certificate signature algorithm is a problem",
             "Lync 2013 does not support RSASSA-PSS signatures (critical), nor DSA, Ed25519, Ed448 or "
             "GOST ones (critical); SHA-512 can stop older Front End services, MD5 is broken and ECDSA is "
             "untested with the RMX (warning). SHA-256 on firmware before 8.1.4 is lost on downgrade.",
             ("Reissue from a CA template that signs with RSA PKCS#1 v1.5 and SHA-256 (or SHA-1).",
              "Import the new certificate: {personal}.", _REBOOT)),
    HintSpec(HintCode.CERT_KEY_MISMATCH, Severity.CRITICAL, "The private key does not belong to the certificate",
             "The RMX cannot prove ownership of the certificate (alert 51 decrypt_error or a failed "
             "import).",
             ("Export the certificate together with its own private key (PFX) from the machine that "
              "created the request, or create a new request on the RMX.",
              "Import the matching pair: {personal}.")),
    HintSpec(HintCode.CERT_CHAIN_INCOMPLETE, Severity.CRITICAL, "The certificate chain is incomplete or untrusted",
             "No path from the certificate to the trust anchors the Front End uses; usually an "
             "intermediate CA missing from what the RMX holds, or a root the Front End does not trust.",
             ("Give the RMX the whole chain (root and every intermediate): {trusted}.",
              "Export the PFX with 'Include all certificates in the certification path'.", _FE_ROOT)),
    HintSpec(HintCode.CERT_NO_CDP, Severity.WARNING, "The certificate has no CRL distribution point",
             "Lync requires a CRL distribution point in server certificates; without one revocation "
             "checking fails.",
             ("Reissue from a CA whose template publishes a reachable CDP (HTTP preferred).",)),
    HintSpec(HintCode.CERT_REVOCATION_UNREACHABLE, Severity.WARNING, "A CRL/OCSP location cannot be reached",
             "An unreachable CDP/OCSP URL stalls the handshake on the checking side for ~30 s and ends in "
             "a TCP reset.",
             ("Make the CDP/AIA URLs reachable from the Front Ends and the RMX (HTTP, firewall, proxy).",
              "Check the revocation settings: {revocation}.")),
    HintSpec(HintCode.PFX_BAD_PASSWORD, Severity.CRITICAL, "The PFX cannot be opened with the given password",
             "The PKCS#12 file did not open with the password supplied (the RMX 8.x import says "
             "'Invalid password.'). A truncated or corrupt file is not this hint: rmxdiag says so and exits 3.",
             ("Check the password file (no trailing spaces; one line).",
              "Export the PFX again from the certificate store with a known password.")),
    HintSpec(HintCode.REGISTRAR_DNS_FAILURE, Severity.CRITICAL, "The registrar name does not resolve",
             "The Front End pool FQDN (or the SRV record of the SIP domain) has no DNS answer "
             "(ms-diagnostics 1008/1014 on the Lync side).",
             ("Check the SIP server address configured on the RMX (IP Network Services → SIP Servers).",
              "Fix the A record of the pool FQDN, or _sipinternaltls._tcp.<domain> SRV records.")),
    HintSpec(HintCode.REGISTRAR_UNREACHABLE, Severity.CRITICAL, "The registrar refuses or ignores the connection",
             "The TCP connection to the registrar port was refused or never answered: wrong IP/port, "
             "Front End services stopped, or a firewall (RMX alarm 'Registration transport error').",
             ("Check the SIP server address and port 5061 on the RMX (IP Network Services → SIP Servers).",
              "Start the Front End services (Start-CsWindowsService) and check they listen on 5061.",
              "Open TCP 5061 between the RMX signaling IP and the pool.")),
    HintSpec(HintCode.REGISTRAR_TLS_TIMEOUT, Severity.CRITICAL, "TCP connects but TLS never answers",
             "The port accepts the connection but the handshake stalls: a tarpit, a non-TLS service, or "
             "the Front End stuck fetching a CRL (stall of ~30 s then a reset).",
             ("Check that the port is the Front End's MTLS port (5061), not a proxy or another service.",
              "Make the CRL/OCSP URLs of the RMX certificate reachable from the Front Ends.")),
    HintSpec(HintCode.REGISTRAR_CERT_UNTRUSTED, Severity.CRITICAL,
             "The RMX side cannot verify the Front End certificate",
             "The Front End's chain does not lead to a CA the RMX trusts: the RMX lacks the Front End's "
             "root (or intermediate).",
             ("Add the Front End's root and intermediates to the RMX: {trusted}.", _REBOOT)),
    HintSpec(HintCode.REGISTRAR_CERT_NAME_MISMATCH, Severity.CRITICAL,
             "The Front End certificate does not match the pool FQDN",
             "The certificate presented by the registrar does not carry the pool FQDN the RMX connects to.",
             ("Point the RMX at the pool FQDN that the Front End certificate carries (SIP Servers settings).",
              "Or reissue the Front End certificate with the pool FQDN in its SAN (Lync Deployment Wizard).")),
    HintSpec(HintCode.REGISTRAR_CERT_EXPIRED, Severity.CRITICAL,
             "The Front End certificate has expired or is not yet valid",
             "The certificate presented by the registrar is outside its validity period (or a clock is wrong).",
             ("Renew the Front End certificate (Lync Deployment Wizard → Request, Assign).",
              "Check NTP on the Front Ends and the RMX.")),
    HintSpec(HintCode.REGISTRAR_CERT_INVALID, Severity.CRITICAL,
             "The Front End certificate cannot be used for TLS",
             "The RMX side refused the certificate the registrar presented for a reason other than trust, "
             "name or validity: it lacks the Server Authentication EKU, its issuer is not marked as a CA, a "
             "path length is exceeded or a signature does not verify (the verify message in the evidence "
             "says which). Adding roots to the RMX does not help.",
             ("Reissue the Front End certificate from a template with Server Authentication (Lync "
              "Deployment Wizard → Request, Assign), issued by a CA whose own certificate is a CA "
              "(basicConstraints CA:TRUE).",
              "On the Front End, open the certificate in certlm.msc → Personal → Certification Path and fix "
              "what it warns about.")),
    HintSpec(HintCode.CLIENT_CERT_NOT_REQUESTED, Severity.WARNING, "The registrar did not ask for a client certificate",
             "No CertificateRequest arrived: this listener is not doing MTLS, so it is not the Front End's "
             "server-to-server port, or it sits behind something that terminates TLS.",
             ("Check that the RMX points at the Front End pool on 5061 and not at a load balancer doing TLS "
              "offload or an Edge/Director port.",)),
    HintSpec(HintCode.CLIENT_CERT_UNKNOWN_CA, Severity.CRITICAL,
             "The Front End does not trust the RMX certificate's issuer",
             "The Front End rejected the RMX certificate with unknown_ca (alert 48) or a reset right after "
             "it: the root or an intermediate of the RMX certificate is missing on the Front End, or the "
             "RMX does not send its intermediates.",
             (_FE_ROOT, "Give the RMX its full chain so it sends the intermediates: {trusted}.",
              "If the Front End trusts many roots, its CertificateRequest CA list may be truncated "
              "(KB2464556): remove unneeded roots from the Front End's Trusted Root store.")),
    HintSpec(HintCode.CLIENT_CERT_REJECTED, Severity.CRITICAL, "The Front End rejected the RMX certificate",
             "The Front End refused the client certificate (alert 42 bad_certificate, 44 revoked, 45 "
             "expired, 46 certificate_unknown (often a missing Client Authentication EKU), 116 "
             "certificate_required, or a reset right after the certificate).",
             ("Run `rmxdiag cert` on the RMX certificate and fix what it reports (EKU, validity, signature).",
              _REISSUE, "Import the new certificate: {personal}.", _REBOOT)),
    HintSpec(HintCode.TLS_VERSION_MISMATCH, Severity.CRITICAL, "The RMX and the Front End share no TLS version",
             "Alert 70 protocol_version (or no common version) right after ClientHello: e.g. an RMX "
             "firmware that offers only TLS 1.0 against a Front End with TLS 1.0/1.1 disabled.",
             ("Upgrade the RMX firmware to a release that speaks TLS 1.2.",
              "Or, as a stop-gap, re-enable TLS 1.0/1.1 on the Front Ends (Skype for Business policy).")),
    HintSpec(HintCode.TLS_HANDSHAKE_FAILURE, Severity.CRITICAL, "The TLS handshake failed",
             "Alert 40 handshake_failure or another handshake error: usually no common cipher suite or "
             "signature algorithm.",
             ("Compare the cipher suites the RMX firmware offers with the Front End's (IIS Crypto / registry).",
              "Upgrade the RMX firmware, or re-enable the needed cipher suites on the Front Ends.")),
    HintSpec(HintCode.SIP_NOT_TRUSTED, Severity.CRITICAL,
             "MTLS works but the Front End does not trust the RMX as a server",
             "The Front End answered 401/403: the name in the RMX certificate is not a trusted "
             "application computer in the topology (Known Servers Table).",
             (*_TRUSTED_APP, "Wait for replication (Get-CsManagementStoreReplicationStatus shows UpToDate) "
              "or restart the Front End services (Stop-CsWindowsService; Start-CsWindowsService); the RMX "
              "needs no reboot.")),
    HintSpec(HintCode.SIP_NO_RESPONSE, Severity.CRITICAL, "MTLS works but no SIP answer arrives",
             "The handshake completed but the registrar sent no SIP response in time (or closed the "
             "connection): often a peer that is not in the Known Servers Table.",
             (*_TRUSTED_APP, "Check the Front End's Lync Server event log for the rejected peer.")),
    HintSpec(HintCode.SIP_ERROR_RESPONSE, Severity.WARNING, "The registrar answered with a SIP error",
             "A non-2xx answer other than 401/403; the status and ms-diagnostics say why.",
             ("Look up the ms-diagnostics id in the evidence (e.g. 1010 certificate trust, 1013 time "
              "skew, 1047 TLS negotiation failed) and follow the matching hint.",)),
    HintSpec(HintCode.RMX_ALARM_REGISTRATION, Severity.CRITICAL, "The RMX reports registration/transport alarms",
             "Active RMX alarms about SIP TLS registration (handshake failure, transport error, registrar "
             "not responding). An alarm alone is not proof: the probes corroborate it.",
             ("Read the other hints for this target: they name the cause the probes saw.",
              "If none corroborates the alarm, clear it on the RMX and watch whether it returns.")),
    HintSpec(HintCode.RMX_ALARM_CERTIFICATE, Severity.WARNING, "The RMX reports certificate alarms",
             "Active RMX alarms about its certificate files (failed to load/verify, expired, about to "
             "expire, subject name invalid).",
             ("Run `rmxdiag cert` on the certificate the RMX holds and fix what it reports.",
              "Re-import the certificate: {personal}.")),
    HintSpec(HintCode.ALARM_UNCORROBORATED, Severity.INFO, "An RMX alarm that the probes contradict",
             "The RMX reports an alarm, but every probe that could confirm it saw a healthy path. Some "
             "RMX alarms fire without a real cause.",
             ("Clear the alarm on the RMX and watch whether it returns.",
              "If it returns, capture the RMX ↔ Front End traffic during the next registration.")),
    HintSpec(HintCode.CAPTURE_TLS_ALERT, Severity.CRITICAL, "A fatal TLS alert in the capture",
             "A fatal alert was seen on the SIP TLS port; the evidence says which alert and who sent it.",
             ("Follow the hint matching the alert (48 → Front End trust, 46/42 → certificate content, "
              "70 → TLS version, 45 → validity/clock).",)),
    HintSpec(HintCode.CAPTURE_EMPTY_CLIENT_CERT, Severity.CRITICAL, "The RMX sent no certificate when asked",
             "After the Front End's CertificateRequest the RMX answered with an empty Certificate: it has "
             "no CA-issued certificate bound to the IP Network Service, or none whose issuer is in the "
             "Front End's CA list.",
             ("Install the CA-issued certificate on the IP Network Service: {personal}.",
              "Check the CertificateRequest CA list for the RMX issuer (KB2464556 truncation).")),
    HintSpec(HintCode.CAPTURE_RESET_AFTER_CLIENT_CERT, Severity.CRITICAL,
             "The peer reset the connection after the client certificate",
             "Schannel often rejects a client certificate with a TCP reset instead of an alert "
             "(ms-diagnostics 1047), or after a ~30 s CRL stall.",
             (_FE_ROOT, "Make the RMX certificate's CDP reachable from the Front Ends.",
              "Run `rmxdiag cert` on the RMX certificate.")),
    HintSpec(HintCode.CAPTURE_NO_SERVER_RESPONSE, Severity.CRITICAL, "SYN or ClientHello never answered",
             "The Front End never answered the connection or the ClientHello: wrong address, service down "
             "or a firewall dropping packets.",
             ("Check the SIP server address/port on the RMX and that the Front End services run.",
              "Open TCP 5061 between the RMX signaling IP and the pool.")),
    HintSpec(HintCode.TLS_PORT_NOT_TLS, Severity.CRITICAL, "Not TLS on the SIP TLS port",
             "The TLS port carried something that is not TLS: the probe's handshake was answered with other "
             "bytes (a SIP-over-TCP, HTTP or other service listens there), or a capture shows clear text "
             "(the evidence quotes its first line), such as an RMX sending SIP over TCP to 5061 because its "
             "SIP server transport is not TLS. No TLS handshake takes place.",
             ("Set the RMX's SIP transport to TLS with port 5061: IP Network Service → SIP Servers → "
              "Transport Type TLS.",
              "Check that the address and port are the Front End's MTLS listener, not a proxy or another "
              "service.")),
    HintSpec(HintCode.CAPTURE_TRUNCATED_CA_LIST, Severity.WARNING, "The Front End's CA list lacks the RMX issuer",
             "The CertificateRequest's list of acceptable CAs does not name the RMX certificate's issuer; "
             "Windows truncates it when too many roots are trusted (KB2464556), and the RMX may then send "
             "no certificate.",
             ("Remove unneeded roots from the Front Ends' Trusted Root store, or set "
              "SendTrustedIssuerList=0 per KB2464556.", _FE_ROOT)),
    HintSpec(HintCode.TLS_LOCAL_POLICY, Severity.WARNING, "rmxdiag's own TLS policy refused the Front End",
             "The probe itself refused what the Front End offered (a weak key, a SHA-1 signature, a small "
             "DH group or a legacy cipher, at OpenSSL's default security level): this is the probe's policy, "
             "not the Front End's rejection. Old RMX firmware may accept what the probe refused. (A TLS "
             "version outside --tls-min/--tls-max is TLS_VERSION_MISMATCH: that range is the RMX's.)",
             ("Re-run `rmxdiag probe` with --tls-min 1.0 (legacy mode: TLS 1.0/1.1, SHA-1, OpenSSL "
              "security level 0) to see the handshake the RMX firmware would do.",
              "Plan to renew the Front End certificate with RSA >= 2048 and SHA-256, and to keep TLS 1.2 "
              "enabled on the Front Ends.")),
    # Warning, not critical: a partial read proves no failure of the link, so it must not page as
    # one; but it must never read as OK either, so a monitoring check exits 1 ("look at this")
    # instead of 0, and a critical root cause found in the part that was read still wins (exit 2).
    HintSpec(HintCode.CAPTURE_INCOMPLETE, Severity.WARNING, "The capture was read only in part",
             "The capture file is damaged or cut short, or it ends in the middle of a connection (before "
             "its handshake had an outcome): what rmxdiag reports is about the part it could read, and the "
             "missing part may hold the failure. The result is partial, not OK.",
             ("Capture again for longer, from before the RMX registers until after it gave up or succeeded "
              "(dumpcap -i <interface> -f 'tcp port 5061' -a duration:120 -w rmx.pcapng).",
              "Copy the capture file completely (check its size) and stop dumpcap before copying it, so the "
              "last block is written.")),
    HintSpec(HintCode.PFX_ENCRYPTION_UNSUPPORTED, Severity.CRITICAL,
             "The PFX is encrypted in a way the RMX import refuses",
             "The PKCS#12 file protects its key or certificates with PBES2/AES (or a SHA-256 MAC), the "
             "default of OpenSSL 3 and of newer Windows exports; RMX firmware opens only the older "
             "3DES + SHA-1 form, and its import says 'Invalid password.' even when the password is right.",
             ("Export the PFX again with TripleDES-SHA1: certlm.msc → the certificate → All Tasks → Export "
              "(Encryption: TripleDES-SHA1), or Export-PfxCertificate -CryptoAlgorithmOption TripleDES_SHA1, "
              "or openssl pkcs12 -export -legacy.",
              "Or let rmxdiag build it: rmxdiag cert pfx CERT --key KEY --chain CHAIN --password-file F -o rmx.pfx "
              "(always 3DES + SHA-1).",
              "Import that PFX: {personal}.")),
)

# CLIENT_CERT_REJECTED when the test itself presented no client certificate (rmxdiag probe without
# --pfx/--cert): the finding stays (the Front End does refuse certificate-less peers), the words say
# that this is expected and how to test the RMX's own certificate.
NO_CLIENT_CERT_TITLE = ("The Front End refused a peer without a certificate "
                        "(expected: the RMX certificate was not tested)")
NO_CLIENT_CERT_STEPS: tuple[str, ...] = (
    "Nothing to fix on the Front End for this: it asked for a client certificate, this test presented none, "
    "and refusing the handshake is what a Front End doing MTLS must do.",
    "Test the RMX's own certificate: rmxdiag probe <registrar> --pfx rmx.pfx --password-file rmx.pass (or --cert "
    "rmx.pem --key rmx.key --chain chain.pem), with --rmx-trust fe-cas.pem (the CAs the RMX trusts) to check the "
    "Front End's chain as well.",
    "Or judge the certificate file alone: rmxdiag cert rmx.pfx --password-file rmx.pass --fqdn <RMX signaling "
    "FQDN> --fe-trust fe-roots.pem (the roots and intermediates exported from the Front End).",
)

CATALOGUE: dict[HintCode, HintSpec] = {spec.code: spec for spec in _SPECS}
if set(CATALOGUE) != set(HintCode) or len(_SPECS) != len(HintCode):
    raise RuntimeError("every HintCode needs exactly one catalogue entry")

_C = HintCode
_F = FixPlace
# Where each hint's fix goes, the first place first (every code has an entry: checked below).
FIX_ON: dict[HintCode, tuple[FixPlace, ...]] = {
    _C.CERT_SELF_SIGNED: (_F.CA, _F.RMX, _F.FRONT_END), _C.CERT_IS_REQUEST: (_F.RMX,),
    _C.CERT_IS_CA: (_F.RMX,),
    _C.CERT_CN_MISMATCH: (_F.CA, _F.RMX, _F.FRONT_END), _C.CERT_SAN_PRESENT: (_F.CA,),
    _C.CERT_DNS_MISMATCH: (_F.DNS,), _C.CERT_EKU_MISSING: (_F.CA, _F.RMX), _C.CERT_EXPIRED: (_F.CA, _F.RMX),
    _C.CERT_NOT_YET_VALID: (_F.RMX, _F.FRONT_END), _C.CERT_EXPIRING_SOON: (_F.CA, _F.RMX),
    _C.CERT_WEAK_KEY: (_F.CA, _F.RMX), _C.CERT_SIGNATURE_UNSUPPORTED: (_F.CA, _F.RMX),
    _C.CERT_KEY_MISMATCH: (_F.RMX,), _C.CERT_CHAIN_INCOMPLETE: (_F.RMX, _F.FRONT_END), _C.CERT_NO_CDP: (_F.CA,),
    _C.CERT_REVOCATION_UNREACHABLE: (_F.CA, _F.NETWORK, _F.RMX), _C.PFX_BAD_PASSWORD: (_F.RMX,),
    _C.REGISTRAR_DNS_FAILURE: (_F.DNS, _F.RMX), _C.REGISTRAR_UNREACHABLE: (_F.NETWORK, _F.FRONT_END, _F.RMX),
    _C.REGISTRAR_TLS_TIMEOUT: (_F.NETWORK, _F.CA), _C.REGISTRAR_CERT_UNTRUSTED: (_F.RMX,),
    _C.REGISTRAR_CERT_NAME_MISMATCH: (_F.RMX, _F.FRONT_END), _C.REGISTRAR_CERT_EXPIRED: (_F.FRONT_END,),
    _C.REGISTRAR_CERT_INVALID: (_F.FRONT_END, _F.CA),
    _C.CLIENT_CERT_NOT_REQUESTED: (_F.RMX, _F.NETWORK), _C.CLIENT_CERT_UNKNOWN_CA: (_F.FRONT_END, _F.RMX),
    _C.CLIENT_CERT_REJECTED: (_F.CA, _F.RMX), _C.TLS_VERSION_MISMATCH: (_F.RMX, _F.FRONT_END),
    _C.TLS_HANDSHAKE_FAILURE: (_F.RMX, _F.FRONT_END), _C.SIP_NOT_TRUSTED: (_F.FRONT_END,),
    _C.SIP_NO_RESPONSE: (_F.FRONT_END,), _C.SIP_ERROR_RESPONSE: (_F.FRONT_END,),
    _C.RMX_ALARM_REGISTRATION: (_F.RMX,), _C.RMX_ALARM_CERTIFICATE: (_F.RMX,), _C.ALARM_UNCORROBORATED: (_F.RMX,),
    _C.CAPTURE_TLS_ALERT: (_F.FRONT_END, _F.RMX), _C.CAPTURE_EMPTY_CLIENT_CERT: (_F.RMX,),
    _C.CAPTURE_RESET_AFTER_CLIENT_CERT: (_F.FRONT_END, _F.CA),
    _C.CAPTURE_NO_SERVER_RESPONSE: (_F.NETWORK, _F.FRONT_END),
    _C.CAPTURE_TRUNCATED_CA_LIST: (_F.FRONT_END,), _C.TLS_LOCAL_POLICY: (_F.FRONT_END,),
    _C.CAPTURE_INCOMPLETE: (_F.CAPTURE,), _C.PFX_ENCRYPTION_UNSUPPORTED: (_F.RMX,),
    _C.TLS_PORT_NOT_TLS: (_F.RMX, _F.FRONT_END),
}
if set(FIX_ON) != set(HintCode):
    raise RuntimeError("every HintCode needs a FIX_ON entry")
# Observations that show a failure without naming its cause (what the wire, the RMX or the Front
# End's refusal shows). A report lists the root causes before them at the same severity: in the
# request-pasted case the cause (CERT_IS_REQUEST) before what it produced (CAPTURE_EMPTY_CLIENT_CERT).
SYMPTOMS: frozenset[HintCode] = frozenset({
    _C.CAPTURE_TLS_ALERT, _C.CAPTURE_EMPTY_CLIENT_CERT, _C.CAPTURE_RESET_AFTER_CLIENT_CERT,
    _C.CAPTURE_NO_SERVER_RESPONSE, _C.CAPTURE_TRUNCATED_CA_LIST, _C.CAPTURE_INCOMPLETE, _C.CLIENT_CERT_REJECTED,
    _C.TLS_HANDSHAKE_FAILURE, _C.SIP_NO_RESPONSE, _C.SIP_ERROR_RESPONSE, _C.REGISTRAR_TLS_TIMEOUT,
    _C.RMX_ALARM_REGISTRATION, _C.RMX_ALARM_CERTIFICATE, _C.ALARM_UNCORROBORATED})
# Generic symptoms: an observation that names no cause by itself (a capture's alert, an RMX
# alarm). The diagnosis folds them into whichever root cause cites the same event.
GENERIC_SYMPTOMS: frozenset[HintCode] = frozenset({_C.CAPTURE_TLS_ALERT, _C.RMX_ALARM_REGISTRATION,
                                                   _C.RMX_ALARM_CERTIFICATE})
# What each hint may be folded into when a probe sees that root cause too (symptom -> cause).
# Anything absent folds into nothing: a finding with that code is always reported under it.
_CLIENT_CERT_DEFECTS = frozenset({_C.CERT_SELF_SIGNED, _C.CERT_KEY_MISMATCH, _C.CERT_EXPIRED, _C.CERT_NOT_YET_VALID,
                                  _C.CERT_EKU_MISSING, _C.CERT_SIGNATURE_UNSUPPORTED, _C.CLIENT_CERT_UNKNOWN_CA,
                                  _C.CERT_REVOCATION_UNREACHABLE, _C.CAPTURE_EMPTY_CLIENT_CERT})
FOLDS_INTO: dict[HintCode, frozenset[HintCode]] = {
    # The factory certificate: one fix (a CA-issued certificate) removes its other defects.
    _C.CERT_CN_MISMATCH: frozenset({_C.CERT_SELF_SIGNED}),
    _C.CERT_EKU_MISSING: frozenset({_C.CERT_SELF_SIGNED}),
    _C.CERT_WEAK_KEY: frozenset({_C.CERT_SELF_SIGNED}),
    _C.CERT_SIGNATURE_UNSUPPORTED: frozenset({_C.CERT_SELF_SIGNED}),
    _C.CERT_NO_CDP: frozenset({_C.CERT_SELF_SIGNED}),
    _C.CERT_EXPIRING_SOON: frozenset({_C.CERT_SELF_SIGNED, _C.CERT_EXPIRED}),
    # A chain the Front End cannot complete is why it answers unknown_ca.
    _C.CERT_CHAIN_INCOMPLETE: frozenset({_C.CERT_SELF_SIGNED, _C.CLIENT_CERT_UNKNOWN_CA}),
    _C.CLIENT_CERT_UNKNOWN_CA: frozenset({_C.CERT_SELF_SIGNED}),
    # The Front End's refusal of the RMX certificate is explained by what is wrong with it.
    _C.CLIENT_CERT_REJECTED: _CLIENT_CERT_DEFECTS,
    _C.CAPTURE_RESET_AFTER_CLIENT_CERT: _CLIENT_CERT_DEFECTS | {_C.CLIENT_CERT_REJECTED},
    _C.CAPTURE_EMPTY_CLIENT_CERT: frozenset({_C.CERT_SELF_SIGNED}),
    _C.CAPTURE_TRUNCATED_CA_LIST: frozenset({_C.CERT_SELF_SIGNED, _C.CLIENT_CERT_UNKNOWN_CA,
                                             _C.CAPTURE_EMPTY_CLIENT_CERT}),
    # Alert 40 from the Front End when the RMX sent no certificate.
    _C.TLS_HANDSHAKE_FAILURE: frozenset({_C.CAPTURE_EMPTY_CLIENT_CERT}),
    # A CRL/OCSP stall on the Front End looks like a TLS timeout.
    _C.REGISTRAR_TLS_TIMEOUT: frozenset({_C.CERT_REVOCATION_UNREACHABLE}),
    _C.CAPTURE_NO_SERVER_RESPONSE: frozenset({_C.REGISTRAR_UNREACHABLE, _C.REGISTRAR_TLS_TIMEOUT}),
    # The Front End looks the RMX up by the name in its certificate.
    _C.SIP_NO_RESPONSE: frozenset({_C.CERT_CN_MISMATCH}),
    # ms-diagnostics 1010 (trust), 1013 (time skew), 1047 (TLS negotiation) name their cause.
    _C.SIP_NOT_TRUSTED: frozenset({_C.CERT_SELF_SIGNED, _C.CERT_CN_MISMATCH, _C.CLIENT_CERT_UNKNOWN_CA,
                                   _C.CERT_EXPIRED, _C.CERT_NOT_YET_VALID, _C.CLIENT_CERT_REJECTED}),
    _C.SIP_ERROR_RESPONSE: frozenset({_C.CERT_SELF_SIGNED, _C.CLIENT_CERT_UNKNOWN_CA, _C.CERT_EXPIRED,
                                      _C.CERT_NOT_YET_VALID, _C.CLIENT_CERT_REJECTED}),
}

# A CA certificate given as the RMX's explains every defect of "its" certificate and every trust
# symptom at once: the one fix is the certificate issued for the RMX.
_CA_AS_LEAF_EXPLAINS = (_C.CAPTURE_EMPTY_CLIENT_CERT, _C.CAPTURE_RESET_AFTER_CLIENT_CERT, _C.CAPTURE_TRUNCATED_CA_LIST,
                        _C.CERT_CHAIN_INCOMPLETE, _C.CERT_CN_MISMATCH, _C.CERT_EKU_MISSING, _C.CERT_KEY_MISMATCH,
                        _C.CERT_NO_CDP, _C.CERT_SAN_PRESENT, _C.CERT_SELF_SIGNED, _C.CLIENT_CERT_REJECTED,
                        _C.CLIENT_CERT_UNKNOWN_CA, _C.SIP_ERROR_RESPONSE, _C.SIP_NOT_TRUSTED)
for _code in _CA_AS_LEAF_EXPLAINS:
    FOLDS_INTO[_code] = FOLDS_INTO.get(_code, frozenset()) | {_C.CERT_IS_CA}


def hint_code(code: str) -> HintCode | None:
    """The catalogue code named ``code`` (None: an informational finding code, not a hint)."""
    return HintCode(code) if code in CATALOGUE else None


def may_fold(code: str, root: str) -> bool:
    """True when a finding with ``code`` may be reported under the root cause ``root``."""
    known = hint_code(code)
    if known is None:
        return False
    return code == root or known in GENERIC_SYMPTOMS or root in FOLDS_INTO.get(known, frozenset())


def remediation(code: str, firmware: Firmware = Firmware.V8) -> list[str]:
    """The remediation steps of ``code`` with the menus of the given firmware family."""
    menus = _MENUS[firmware]
    return [step.format(**menus) for step in CATALOGUE[HintCode(code)].steps]
