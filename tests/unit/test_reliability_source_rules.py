"""Security rules on our own source, and a self-test of the secret scanner the daemon tests rely on."""

from __future__ import annotations

import base64
import re
from pathlib import Path

import pytest

from tests.support import secrets as canary

ROOT = Path(__file__).resolve().parents[2]
SOURCES = sorted(p for package in ("daemon", "probes") for p in (ROOT / package).rglob("*.py"))
# Never in the product: a shell between us and a child (injection), yaml.load (object
# construction from YAML), and the stdlib's xml.etree/minidom/sax on untrusted XML (expat < 2.6
# here: entity blow-up); defusedxml is the only XML parser allowed.
FORBIDDEN = {
    "shell=True": re.compile(r"shell\s*=\s*True"),
    "yaml.load(": re.compile(r"\byaml\.(?:load|load_all|unsafe_load|full_load)\s*\("),
    # Importing the exception class (to catch defusedxml's errors) or saxutils.escape (to write
    # requests) parses nothing.
    "xml.etree": re.compile(r"^\s*(?:import\s+xml\.(?:etree|dom|sax)|from\s+xml\.(?:etree|dom|sax)[\w.]*"
                            r"\s+import\s+(?!(?:ParseError|escape)\s*$))", re.M),
    "os.system / popen": re.compile(r"\bos\.(?:system|popen)\s*\("),
    "pickle": re.compile(r"^\s*(?:from|import)\s+pickle\b", re.M),
}


def test_sources_were_found() -> None:
    """Given the packages, Then the scan covers their modules (a scan of nothing proves nothing)."""
    assert len(SOURCES) > 40
    assert ROOT / "probes" / "alarms" / "xmlapi.py" in SOURCES


@pytest.mark.parametrize("rule", sorted(FORBIDDEN))
def test_forbidden_construct_never_appears(rule: str) -> None:
    """Given daemon/ and probes/, Then no module uses the forbidden construct."""
    hits = [f"{p.relative_to(ROOT)}:{text[:m.start()].count(chr(10)) + 1}"
            for p in SOURCES for text in [p.read_text()] for m in FORBIDDEN[rule].finditer(text)]
    assert not hits, hits


@pytest.mark.parametrize("rule,sample", [
    ("shell=True", "subprocess.run(cmd, shell = True)"),
    ("yaml.load(", "doc = yaml.load(stream)"),
    ("xml.etree", "from xml.etree import ElementTree"),
    ("xml.etree", "from xml.etree.ElementTree import fromstring"),
    ("xml.etree", "import xml.dom.minidom"),
    ("os.system / popen", "os.system('ls')"),
    ("pickle", "import pickle"),
])
def test_each_rule_matches_its_construct(rule: str, sample: str) -> None:
    """Given a line with the construct, Then its rule matches (the rules can fail)."""
    assert FORBIDDEN[rule].search(sample)


def test_ruff_security_rules_are_selected() -> None:
    """Given pyproject, Then ruff's S (bandit) rules are selected and none of S602/S506/S314 ignored."""
    text = (ROOT / "pyproject.toml").read_text()
    select = re.search(r'^select = \[(.*?)\]', text, re.M)
    assert select and '"S"' in select.group(1)
    ignore = re.search(r'^ignore = \[(.*?)\]', text, re.M)
    assert ignore and not re.search(r'"S(?:602|605|506|314|306)"', ignore.group(1))


@pytest.mark.parametrize("secret", canary.CANARIES)
def test_scanner_finds_every_encoding(secret: str) -> None:
    """Given a canary embedded in each encoded form, Then the scanner reports it."""
    for name, form in canary.encodings(secret).items():
        assert canary.leaks("blob", b"prefix " + form + b" suffix"), name
    padded = base64.b64encode(b"xx" + secret.encode())  # shifted alignment is a different string
    assert canary.leaks("blob", b"-----BEGIN PRIVATE KEY-----") and not canary.leaks("blob", padded[:4])
