"""The RMX XML API: LOGIN, GET_STATE (MCU state + number of active alarms), LOGOUT.

Transactions are XML documents POSTed over HTTP(S): root ``TRANS_MCU``, ``TRANS_COMMON_PARAMS``
(``MCU_TOKEN``, ``MCU_USER_TOKEN``, ``MESSAGE_ID``), then ``ACTION``. ``LOGIN`` answers the two
tokens; ``RETURN_STATUS/ID`` 0 is success. A transaction listing alarm *texts* is not publicly
documented, so this source contributes the MCU state and the active alarm count only.

Safety: certificate verification is always on (system store or a CA bundle); no redirects are
followed (the LOGIN body holds the password); each transaction has one total timeout (resolving,
connecting, TLS, request, status line, headers and body: a peer dripping one byte at a time does
not stretch it) inside the run's deadline; answers are read in bounded pieces up to
:data:`MAX_ANSWER` bytes (never decompressed), then parsed with defusedxml with DTDs forbidden
(no entity expansion, no external entities) and an iterative, depth-capped walk. Credentials are
read from files (relative names resolve in systemd's ``$CREDENTIALS_DIRECTORY``); their values
never reach a log line, an exception message or a child process, and every text taken from an
answer is redacted by value (:mod:`probes.redact`): an RMX that echoes the password (or any other
secret the process read) in a GET_STATE or LOGOUT answer does not put it into a finding or a log.
"""

from __future__ import annotations

import io
import logging
import os
import ssl
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from xml.etree.ElementTree import ParseError
from xml.sax.saxutils import escape

from probes import httpclient
from probes.fileio import FileReadError
from probes.httpclient import shown_url
from probes.model import ErrorKind, InputError
from probes.redact import MARK, redact
from probes.target import SecretFile, XmlApi

log = logging.getLogger(__name__)

MAX_ANSWER = 1 << 20  # bytes; an RMX answer to these transactions is a few KiB
MAX_DEPTH = 64
MAX_ELEMENTS = 20_000


class XmlApiError(InputError):
    """The XML API could not be used; ``kind`` is the probe error kind, the message one line."""

    def __init__(self, kind: ErrorKind, detail: str) -> None:
        super().__init__(detail, kind)


@dataclass(frozen=True)
class McuState:
    """What GET_STATE said. None: the answer did not contain that element."""

    description: str | None  # MCU_STATE/DESCRIPTION: normal / major / minor / startup
    state_id: int | None  # MCU_STATE/ID
    active_alarms: int | None  # NUMBER_OF_ACTIVE_ALARMS

    def to_json(self) -> dict[str, Any]:
        """JSON shape."""
        return {"mcu_state": self.description, "mcu_state_id": self.state_id,
                "active_alarms": self.active_alarms}


def secret_path(path: Path) -> Path:
    """A relative secret name resolves inside systemd's credentials directory when it is set."""
    creds = os.environ.get("CREDENTIALS_DIRECTORY")
    if not path.is_absolute() and creds:
        return Path(creds) / path
    return path


def read_secret(secret: SecretFile, what: str) -> str:
    """The file's text; XmlApiError(FILE_UNREADABLE/BAD_INPUT/INSECURE_FILE) naming only the file.

    A control character (a NUL from a UTF-16 file, an escape) is refused: XML cannot carry it.
    """
    path = secret_path(secret.path)
    try:
        raw = SecretFile(path, secret.secret).read(f"{what} file")
    except FileReadError as exc:
        raise XmlApiError(exc.kind, str(exc)) from None
    if not raw:
        raise XmlApiError(ErrorKind.BAD_INPUT, f"{path}: the {what} file is empty")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise XmlApiError(ErrorKind.BAD_INPUT, f"{path}: the {what} file is not UTF-8 text") from None
    if any((ord(c) < 0x20 and c != "\t") or ord(c) == 0x7F for c in text):
        why = "a NUL byte (a UTF-16 file?)" if "\0" in text else "a control character"
        raise XmlApiError(ErrorKind.BAD_INPUT, f"{path}: the {what} file holds {why}; the XML API cannot carry it")
    return text


def _transaction(action: str, tokens: tuple[str, str], message_id: int) -> bytes:
    return (f"<TRANS_MCU><TRANS_COMMON_PARAMS><MCU_TOKEN>{escape(tokens[0])}</MCU_TOKEN>"
            f"<MCU_USER_TOKEN>{escape(tokens[1])}</MCU_USER_TOKEN><MESSAGE_ID>{message_id}</MESSAGE_ID>"
            f"</TRANS_COMMON_PARAMS><ACTION>{action}</ACTION></TRANS_MCU>").encode()


def parse_answer(data: bytes) -> dict[str, str]:
    """Leaf texts of an answer keyed by tag and by 'PARENT/TAG' (first occurrence wins).

    defusedxml refuses any DTD (so entity bombs and external entities never expand); the walk
    is iterative over parse events with a depth and element cap. Raises XmlApiError(UPSTREAM).
    """
    # defusedxml ships no type stubs; a local ignore avoids a new test dependency (types-defusedxml).
    from defusedxml import DefusedXmlException  # type: ignore[import-untyped]
    from defusedxml.ElementTree import iterparse  # type: ignore[import-untyped]

    if len(data) > MAX_ANSWER:
        raise XmlApiError(ErrorKind.UPSTREAM, f"answer larger than {MAX_ANSWER} bytes")
    found: dict[str, str] = {}
    stack: list[str] = []
    count = 0
    try:
        for event, elem in iterparse(io.BytesIO(data), events=("start", "end"), forbid_dtd=True):
            if event == "start":
                stack.append(str(elem.tag))
                count += 1
                if len(stack) > MAX_DEPTH or count > MAX_ELEMENTS:
                    raise XmlApiError(ErrorKind.UPSTREAM, "answer nests too deep or has too many elements")
                continue
            tag = stack.pop()
            # Everything read from the answer is redacted by value: an RMX may quote the credentials.
            text = redact((elem.text or "").strip())
            if len(elem) == 0:
                found.setdefault(tag, text)
                if stack:
                    found.setdefault(f"{stack[-1]}/{tag}", text)
            elem.clear()
    except DefusedXmlException as exc:
        raise XmlApiError(ErrorKind.UPSTREAM, f"answer refused: {type(exc).__name__} (DTDs and entities "
                          "are not accepted)") from None
    except ParseError as exc:
        raise XmlApiError(ErrorKind.UPSTREAM, f"answer is not well-formed XML ({exc})") from None
    return found


def _status(found: dict[str, str], what: str) -> None:
    status = found.get("RETURN_STATUS/ID")
    if status is None:
        raise XmlApiError(ErrorKind.UPSTREAM, f"{what}: answer has no RETURN_STATUS/ID")
    if status.strip() != "0":
        desc = found.get("RETURN_STATUS/DESCRIPTION", "")[:200]
        raise XmlApiError(ErrorKind.UPSTREAM, f"{what} refused: RETURN_STATUS {status[:20]}"
                          + (f" ({desc})" if desc else ""))


def _quotes(text: str, secret: str, window: int = 5) -> bool:
    """True when ``text`` contains the secret or any ``window``-character piece of it."""
    if len(secret) <= window:
        return bool(secret) and secret in text
    return any(secret[i:i + window] in text for i in range(len(secret) - window + 1))


def _int(text: str | None) -> int | None:
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


class _Client:
    """POSTs transactions to one XML API; every exchange ends by the run's one deadline."""

    def __init__(self, api: XmlApi, deadline: float) -> None:
        self.api = api
        self.deadline = deadline
        self.url = shown_url(api.url)
        self.message_id = 0
        self.ssl = ssl.create_default_context(cafile=str(api.ca_bundle) if api.ca_bundle else None)

    def post(self, body: bytes, what: str, secret: str | None = None) -> dict[str, str]:
        """One transaction's answer (leaf texts, redacted); XmlApiError with a one-line message."""
        self.message_id += 1
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise XmlApiError(ErrorKind.DEADLINE, f"{self.url}: deadline reached before {what}")
        budget = min(self.api.timeout, remaining)
        status, data = self._exchange(body, what, budget)
        if status != 200:
            raise XmlApiError(ErrorKind.UPSTREAM, f"{self.url}: {what} answered HTTP {status}")
        try:
            found = parse_answer(data)
            _status(found, what)
        except XmlApiError as exc:
            detail = redact(str(exc))
            if secret and (_quotes(detail, secret) or MARK in detail):
                detail = f"{what} refused (the RMX's description is withheld: it quotes the password)"
            raise XmlApiError(exc.kind, f"{self.url}: {detail}") from None
        return found

    def _exchange(self, body: bytes, what: str, budget: float) -> tuple[int, bytes]:
        """(HTTP status, body) within ``budget`` seconds in total, however slowly the peer sends."""
        import aiohttp

        try:
            answer = httpclient.request("POST", self.api.url, timeout=budget, max_bytes=MAX_ANSWER, data=body,
                                        headers={"Content-Type": "text/xml"}, ssl=self.ssl)
        except TimeoutError:
            raise XmlApiError(ErrorKind.DEADLINE, f"{self.url}: {what} timed out: no complete answer within "
                              f"{budget:.1f}s") from None
        except aiohttp.ClientConnectorCertificateError:
            raise XmlApiError(ErrorKind.UPSTREAM, f"{self.url}: TLS verification of the RMX failed during "
                              f"{what} (give --ca-bundle with the issuing CA)") from None
        except (aiohttp.ClientConnectorError, aiohttp.InvalidURL):
            raise XmlApiError(ErrorKind.UPSTREAM, f"{self.url}: cannot connect for {what}") from None
        except aiohttp.ClientResponseError as exc:  # the status line or headers are not HTTP
            raise XmlApiError(ErrorKind.UPSTREAM, f"{self.url}: {what} answer is not a valid HTTP answer "
                              f"({type(exc).__name__})") from None
        except (aiohttp.ClientPayloadError, aiohttp.ServerDisconnectedError, aiohttp.ClientOSError,
                ConnectionError) as exc:
            raise XmlApiError(ErrorKind.UPSTREAM, f"{self.url}: {what} answer cut short (connection "
                              f"{'reset' if _was_reset(exc) else 'closed'} by the RMX)") from None
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            raise XmlApiError(ErrorKind.UPSTREAM, f"{self.url}: {what} failed ({type(exc).__name__})") from None
        if answer.status == 200 and answer.truncated:
            raise XmlApiError(ErrorKind.UPSTREAM, f"{self.url}: {what} answer larger than {MAX_ANSWER} bytes")
        return answer.status, answer.body


def _was_reset(exc: BaseException) -> bool:
    """True when ``exc`` (or what caused it) is a TCP reset rather than an orderly close."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ConnectionResetError) or "reset" in str(seen).lower():
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def fetch_state(api: XmlApi, deadline: float | None = None) -> McuState:
    """LOGIN, GET_STATE, LOGOUT; raises XmlApiError with a one-line, secret-free message.

    A GET_STATE answer with neither an MCU state nor an active alarm count is an error (nothing
    to judge is not OK).
    """
    deadline = deadline if deadline is not None else time.monotonic() + 3 * api.timeout
    user = read_secret(api.user, "user")  # not redacted: a user name is no secret (XmlApi)
    password = read_secret(api.password, "password")
    parts = urlsplit(api.url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise XmlApiError(ErrorKind.BAD_INPUT, f"{shown_url(api.url)}: the XML API URL must be http(s)://host[:port]/")
    client = _Client(api, deadline)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    login = (f"<LOGIN><MCU_IP><IP>{escape(parts.hostname)}</IP><LISTEN_PORT>{port}</LISTEN_PORT></MCU_IP>"
             f"<USER_NAME>{escape(user)}</USER_NAME><PASSWORD>{escape(password)}</PASSWORD>"
             "<STATION_NAME>rmxdiag</STATION_NAME></LOGIN>")
    found = client.post(_transaction(login, ("0", "0"), 1), "LOGIN", secret=password)
    del login, password
    tokens = (found.get("MCU_TOKEN", ""), found.get("MCU_USER_TOKEN", ""))
    if not all(tokens):
        raise XmlApiError(ErrorKind.UPSTREAM, f"{client.url}: LOGIN answer has no MCU_TOKEN/MCU_USER_TOKEN")
    try:
        state = client.post(_transaction("<GET_STATE/>", tokens, 2), "GET_STATE")
    finally:
        _logout(client, tokens)
    mcu = McuState(state.get("MCU_STATE/DESCRIPTION") or None, _int(state.get("MCU_STATE/ID")),
                   _int(state.get("NUMBER_OF_ACTIVE_ALARMS")))
    if mcu.description is None and mcu.active_alarms is None:
        raise XmlApiError(ErrorKind.UPSTREAM, f"{client.url}: GET_STATE answer has no MCU_STATE/DESCRIPTION and "
                          "no numeric NUMBER_OF_ACTIVE_ALARMS: nothing to judge")
    return mcu


def _logout(client: _Client, tokens: tuple[str, str]) -> None:
    try:
        client.post(_transaction("<LOGOUT/>", tokens, 3), "LOGOUT")
    except XmlApiError as exc:  # the state is already known; a failed logout only costs a session
        log.info("XML API logout failed: %s", exc)
