"""The typed YAML reader under ``daemon.config.load``: composed nodes that remember their line.

``yaml.safe_load`` forgets where a value came from; composing the document with the SafeLoader
keeps each node's start mark, so every error can say ``file:line: key.path: what is wrong``.
Values never appear in error messages for secret-looking keys (they might be the secret).
"""

from __future__ import annotations

import difflib
import ipaddress
import os
import re
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import yaml

from daemon.config.files import ConfigError, credential_file, private_file, readable_file
from probes.fileio import FileReadError, open_regular

MAX_CONFIG_BYTES = 1024 * 1024

# Every pattern is applied with fullmatch() and ends in \Z: `$` also matches before a trailing newline.
LABEL_SAFE = re.compile(r"[A-Za-z0-9_.-]{1,64}\Z")
_LABEL = r"[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9])?"
_HOSTNAME = re.compile(rf"(?=.{{1,253}}\Z){_LABEL}(\.{_LABEL})*\.?\Z")
_CREDENTIAL_NAME = re.compile(r"[A-Za-z0-9_.@-]{1,255}\Z")

T = TypeVar("T")


class Node:
    """One YAML node with its key path, its line and the means to build typed values."""

    def __init__(self, node: yaml.Node, path: str, reader: Reader, key_line: int | None = None) -> None:
        self.node = node
        self.path = path
        self.reader = reader
        self.key_line = key_line  # line of the key this value belongs to (None for list items)

    @property
    def line(self) -> int:
        """1-based line where the node starts."""
        return int(self.node.start_mark.line) + 1

    def fail(self, what: str) -> ConfigError:
        """The error for this node (return value is raised by the caller)."""
        where = f"{self.path}: " if self.path else ""
        return ConfigError(f"{self.reader.source}:{self.line}: {where}{what}")

    # -- scalars -------------------------------------------------------------------------------
    def _scalar(self) -> Any:
        if not isinstance(self.node, yaml.ScalarNode):
            raise self.fail(f"expected a single value, got a {_kind(self.node)}")
        return self.reader.construct(self.node)

    def text(self, pattern: re.Pattern[str] | None = None, what: str = "") -> str:
        """A non-empty string (YAML numbers are refused: quote them)."""
        value = self._scalar()
        if not isinstance(value, str) or not value.strip():
            raise self.fail(f"expected a non-empty string, got {_show(value)}")
        if pattern is not None and not pattern.fullmatch(value):
            raise self.fail(f"{_show(value)} is not {what}")
        return value

    def hostname(self) -> str:
        """A DNS name or an IP address."""
        value = self.text()
        if _is_ip(value) or _HOSTNAME.fullmatch(value):
            return value
        raise self.fail(f"{_show(value)} is not a host name or IP address")

    def ip(self) -> str:
        """An IPv4/IPv6 address."""
        value = self.text()
        if not _is_ip(value):
            raise self.fail(f"{_show(value)} is not an IP address")
        return value

    def host_port(self, default_port: int | None = None) -> str:
        """``host:port`` (``[v6]:port`` for IPv6); returned normalised."""
        value = self.text()
        host, sep, port_text = value.rpartition(":")
        if not sep:
            if default_port is None:
                raise self.fail(f"{_show(value)} is not host:port")
            host, port_text = value, str(default_port)
        bare = host[1:-1] if host.startswith("[") and host.endswith("]") else host
        if not bare or not (_is_ip(bare) or _HOSTNAME.fullmatch(bare)) or not port_text.isdigit() \
                or not 1 <= int(port_text) <= 65535:
            raise self.fail(f"{_show(value)} is not host:port (port 1-65535)")
        return f"{host}:{int(port_text)}"

    def integer(self, low: int, high: int) -> int:
        """An integer within [low, high]."""
        value = self._scalar()
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(f"expected an integer, got {_show(value)}")
        if not low <= value <= high:
            raise self.fail(f"{value} is out of range ({low}-{high})")
        return value

    def number(self, low: float, high: float, allow_zero: bool = False) -> float:
        """A number (seconds, ...) within [low, high]; 0 is refused unless ``allow_zero``."""
        value = self._scalar()
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.fail(f"expected a number, got {_show(value)}")
        if not low <= value <= high or (value == 0 and not allow_zero):
            bound = f"more than 0 and at most {high:g}" if low == 0 and not allow_zero else f"{low:g}-{high:g}"
            raise self.fail(f"{value:g} is out of range ({bound})")
        return float(value)

    def boolean(self) -> bool:
        """true or false."""
        value = self._scalar()
        if not isinstance(value, bool):
            raise self.fail(f"expected true or false, got {_show(value)}")
        return value

    def parsed(self, parse: Callable[[str], T]) -> T:
        """``parse`` of the value as written (an unquoted YAML number such as 1.2 included); its
        ValueError becomes this node's error."""
        value = self._scalar()
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise self.fail(f"expected a single value, got {_show(value)}")
        try:
            return parse(str(value))
        except ValueError as exc:
            raise self.fail(str(exc)) from None

    def choice(self, allowed: tuple[str, ...]) -> str:
        """One of ``allowed`` (compared as strings)."""
        value = self._scalar()
        if not isinstance(value, str) or value not in allowed:
            raise self.fail(f"{_show(value)} is not one of {', '.join(allowed)}")
        return value

    # -- collections ---------------------------------------------------------------------------
    def mapping(self) -> Mapping:
        """This node as a closed mapping (see :class:`Mapping`)."""
        if not isinstance(self.node, yaml.MappingNode):
            raise self.fail(f"expected a mapping (key: value), got a {_kind(self.node)}")
        return Mapping(self)

    def items(self, allow_empty: bool = True) -> Iterator[Node]:
        """The elements of a sequence, each with its ``path[i]``."""
        if not isinstance(self.node, yaml.SequenceNode):
            raise self.fail(f"expected a list, got a {_kind(self.node)}")
        if not allow_empty and not self.node.value:
            raise self.fail("must not be empty")
        for index, child in enumerate(self.node.value):
            yield Node(child, f"{self.path}[{index}]", self.reader)

    def texts(self) -> tuple[str, ...]:
        """A list of non-empty strings."""
        return tuple(item.text() for item in self.items())

    # -- files ---------------------------------------------------------------------------------
    def path_value(self) -> Path:
        """A path; relative paths resolve against the config file's directory."""
        return self.reader.resolve(self.text())

    def input_file(self) -> Path:
        """An existing, readable regular file (certificate, CA bundle, report, capture...)."""
        written = self.text()
        path = self.reader.resolve(written)
        if not Path(written).is_absolute() and not path.exists() and not path.is_symlink():
            # Say where a relative name was looked for: next to the config file, not in the working directory.
            raise self.fail(f"{path.absolute()}: no such file ({written!r} is relative to the directory of "
                            f"{self.reader.source.name})")
        readable_file(path, self.fail)
        return path

    def directory(self, must_exist: bool = True) -> Path:
        """A directory (checked to exist unless ``must_exist`` is False)."""
        path = self.path_value()
        if must_exist and not path.is_dir():
            raise self.fail(f"{path}: not an existing directory")
        return path

    def secret_file(self) -> Path:
        """Key material or a password/token file: a path, or ``{credential: NAME}`` (see config_files)."""
        if isinstance(self.node, yaml.MappingNode):
            spec = self.mapping()
            name = spec.required("credential").text(_CREDENTIAL_NAME, "a credential name (no '/')")
            spec.finish()
            return credential_file(name, self.fail)
        value = self._scalar()
        if not isinstance(value, str) or not value.strip():
            raise self.fail("expected the path of a file (or {credential: NAME})")
        path = self.reader.resolve(value)
        if not path.exists() and not path.is_symlink():
            # Never repeat the value: a user who typed the secret itself here must not see it
            # copied into logs and terminals by the error message.
            raise self.fail("no such file (the value is not shown in case it is the secret itself; "
                            "give the path of a file that holds the secret)")
        return private_file(path, self.fail)

    def check_secret(self, path: Path) -> Path:
        """The secret-file checks of :meth:`secret_file` for a path found by other means."""
        return private_file(path, self.fail)


class Mapping:
    """A closed YAML mapping: every key must be taken, otherwise :meth:`finish` names the first stray one."""

    # Keys that would put a secret value into the config file itself.
    INLINE_SECRETS = frozenset({"password", "passphrase", "token", "secret", "api_key", "bearer_token",
                                "pfx_password", "user_password"})

    def __init__(self, owner: Node) -> None:
        self.owner = owner
        self.entries: dict[str, tuple[Node, Node]] = {}
        assert isinstance(owner.node, yaml.MappingNode)  # noqa: S101 (guaranteed by Node.mapping)
        written: set[str] = set()
        for key_node, _value in owner.node.value:  # duplicates among the keys written here
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self._key(key_node)
            if key in written:
                path = f"{owner.path}.{key}" if owner.path else key
                raise Node(key_node, path, owner.reader).fail("duplicate key")
            written.add(key)
        # Resolve YAML merge keys (``<<: *defaults``) the way safe_load does, so targets can share
        # a block: merged pairs come first, so the keys written next to the merge win.
        owner.reader.flatten(owner.node)
        for key_node, value_node in owner.node.value:
            key = self._key(key_node)
            child_path = f"{owner.path}.{key}" if owner.path else key
            at_key = Node(key_node, child_path, owner.reader)
            if key in self.INLINE_SECRETS:
                # Refused before anything else so the message says why, never what the value was.
                raise at_key.fail("inline secrets are refused: put the value in a file readable only by rmxdiag "
                                  f"and give its path as {key.split('_')[-1]}_file (or credential: NAME)")
            self.entries[key] = (at_key, Node(value_node, child_path, owner.reader, at_key.line))
        self.taken: set[str] = set()

    def _key(self, key_node: yaml.Node) -> str:
        key = Node(key_node, self.owner.path, self.owner.reader)._scalar()
        if not isinstance(key, str):
            raise Node(key_node, self.owner.path, self.owner.reader).fail(f"keys must be names, got {_show(key)}")
        return key

    def get(self, key: str) -> Node | None:
        """The value node of ``key`` (None when absent or YAML null)."""
        self.taken.add(key)
        entry = self.entries.get(key)
        if entry is None or (isinstance(entry[1].node, yaml.ScalarNode) and entry[1].node.tag.endswith(":null")):
            return None
        return entry[1]

    def required(self, key: str) -> Node:
        """The value node of ``key``; an error naming the key when it is missing."""
        node = self.get(key)
        if node is None:
            where = f"{self.owner.path}.{key}" if self.owner.path else key
            line = self.owner.key_line or self.owner.line  # the "section:" line, not its first entry
            raise ConfigError(f"{self.owner.reader.source}:{line}: {where}: required key is missing")
        return node

    def opt(self, key: str, build: Callable[[Node], T], default: T) -> T:
        """``build(node)`` when ``key`` is present, else ``default``."""
        node = self.get(key)
        return default if node is None else build(node)

    def listed(self, key: str) -> list[Node]:
        """The elements of the list under ``key`` (empty when absent)."""
        node = self.get(key)
        return [] if node is None else list(node.items())

    def has(self, key: str) -> bool:
        """Whether ``key`` is present (without taking it)."""
        return key in self.entries

    def only(self, *keys: str) -> None:
        """Refuse unknown keys up front (used where a typo would otherwise read as a missing key)."""
        for key, (key_node, _value) in self.entries.items():
            if key not in keys:
                raise key_node.fail("unknown key" + _closest(key, keys))

    def finish(self) -> None:
        """Refuse the first key nobody took (keys are checked in file order)."""
        for key, (key_node, _value) in self.entries.items():
            if key in self.taken:
                continue
            raise key_node.fail("unknown key" + _closest(key, self.taken))


class Reader:
    """Parses one config file into nodes; resolves relative paths against its directory."""

    def __init__(self, source: Path) -> None:
        self.source = source
        self.base = source.parent
        self._loader: Any = None

    def root(self) -> Node:
        """The document's root node (an error when the file is unreadable, too big or not YAML)."""
        try:
            if self.source.is_dir():
                raise ConfigError(f"{self.source}: is a directory, expected a YAML file")
            if not self.source.exists():
                raise ConfigError(f"{self.source}: no such file")
            # Non-blocking and checked on the descriptor: a FIFO (or a device) is refused at once
            # instead of hanging check-config, the daemon's start or its reload.
            with os.fdopen(open_regular(self.source, "YAML file"), "rb") as handle:
                data = handle.read(MAX_CONFIG_BYTES + 1)
        except FileReadError as exc:
            raise ConfigError(str(exc)) from None
        except OSError as exc:
            raise ConfigError(f"{self.source}: cannot read ({exc.strerror})") from None
        if len(data) > MAX_CONFIG_BYTES:
            raise ConfigError(f"{self.source}: larger than 1 MiB, not a configuration file")
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise ConfigError(f"{self.source}: not UTF-8 text") from None
        try:
            self._loader = _LOADER(text)
            node = self._loader.get_single_node()
        except RecursionError:  # the composer recurses per nesting level: [[[[... stops it
            raise ConfigError(f"{self.source}: nested too deeply to be a configuration file") from None
        except yaml.YAMLError:
            # Re-read with the pure-Python parser: its messages are the same whether or not
            # libyaml is installed, and errors are rare enough for the cost not to matter.
            node = self._compose_or_raise(text)
        if node is None:
            raise ConfigError(f"{self.source}: the file is empty")
        return Node(node, "", self)

    def _compose_or_raise(self, text: str) -> yaml.Node | None:
        try:
            self._loader = yaml.SafeLoader(text)
            node: yaml.Node | None = self._loader.get_single_node()
        except RecursionError:
            raise ConfigError(f"{self.source}: nested too deeply to be a configuration file") from None
        except yaml.reader.ReaderError as exc:  # a control character: no mark, only a position
            row = text.count("\n", 0, max(exc.position, 0)) + 1
            raise ConfigError(f"{self.source}:{row}: invalid YAML: unacceptable character "
                              f"#x{int(exc.character):04x}") from None
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            line = f":{mark.line + 1}" if mark is not None else ""
            raise ConfigError(f"{self.source}{line}: invalid YAML: {_plain(exc.problem or exc.context or '')}") \
                from None
        except yaml.YAMLError as exc:
            raise ConfigError(f"{self.source}: invalid YAML: {type(exc).__name__}") from None
        return node

    def construct(self, node: yaml.ScalarNode) -> Any:
        """The typed value of a scalar (int, float, bool, str, None...) as safe_load would give it."""
        assert self._loader is not None  # noqa: S101 (root() runs first)
        try:
            return self._loader.construct_object(node, deep=True)
        except yaml.YAMLError:
            raise Node(node, "", self).fail(f"cannot read the value ({node.tag})") from None

    def flatten(self, node: yaml.MappingNode) -> None:
        """Apply merge keys in place (an error when a merge does not name mappings)."""
        try:
            self._loader.flatten_mapping(node)
        except yaml.constructor.ConstructorError as exc:
            mark = exc.problem_mark
            line = f":{mark.line + 1}" if mark is not None else ""
            raise ConfigError(f"{self.source}{line}: invalid YAML merge: {exc.problem}") from None

    def resolve(self, text: str) -> Path:
        """Relative paths are relative to the directory of the config file, like an include."""
        path = Path(text)
        return path if path.is_absolute() else self.base / path

    def close(self) -> None:
        """Release the parser."""
        if self._loader is not None and hasattr(self._loader, "dispose"):
            self._loader.dispose()


# The parser's words for the mistakes people make, and what they mean in plain words.
_PLAIN = (
    ("mapping values are not allowed here", "wrong indentation: this line is indented deeper than the key above "
     "it (keys of one section start in the same column), or a value containing ': ' needs quotes"),
    ("expected <block end>", "wrong indentation: this line does not line up with the lines above it (keys of one "
     "section, and the '-' of one list, start in the same column)"),
    ("did not find expected key", "wrong indentation, or a list item without its '-': keys of one section start "
     "in the same column"),
    ("did not find expected '-' indicator", "wrong indentation: the items of a list start with '-' in the same "
     "column"),
    ("found character '\\t' that cannot start any token", "a tab character: YAML indentation must be spaces"),
)


def _closest(key: str, known: Iterable[str]) -> str:
    """'; did you mean registrars?' for the known key nearest to a mistyped one ('' when none is near)."""
    near = difflib.get_close_matches(key, sorted(known), n=1, cutoff=0.6)
    return f"; did you mean {near[0]}?" if near else ""


def _plain(problem: str) -> str:
    """The parser's message in words a person understands (the parser's own words in brackets)."""
    plain = next((text for needle, text in _PLAIN if needle in problem), None)
    return f"{plain} ({problem})" if plain else problem


# libyaml's parser composes ~5x faster than the pure-Python one and keeps the same line marks.
_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def _kind(node: yaml.Node) -> str:
    if isinstance(node, yaml.MappingNode):
        return "mapping"
    return "list" if isinstance(node, yaml.SequenceNode) else "single value"


def _show(value: Any) -> str:
    """A value for an error message, shortened (never used for secret keys: those hold paths only)."""
    if value is None:
        return "nothing"
    text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= 60 else text[:57] + "..."
