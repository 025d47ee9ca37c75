"""The pages' one stylesheet and the Content-Security-Policy that admits it (and nothing else).

The stylesheet is inlined as one fixed ``<style>`` element (the self-contained report must carry
it), so the policy names its SHA-256 instead of ``'unsafe-inline'``: no other style, no script,
no remote load can run. Nothing in the pages uses ``style=`` attributes (a hash does not admit
them); the SVG ladder uses presentation attributes and classes.
"""

from __future__ import annotations

import base64
import hashlib

CSS = """
:root{--ok:#1a7f37;--ok-bg:#dafbe1;--warning:#9a6700;--warning-bg:#fff8c5;--critical:#cf222e;
--critical-bg:#ffebe9;--unknown:#8250df;--unknown-bg:#fbefff;--pending:#57606a;--pending-bg:#eaeef2;
--line:#d0d7de;--muted:#57606a;--info:#0969da}
*{box-sizing:border-box}
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;color:#1f2328;
margin:0 auto;padding:16px 24px 48px;max-width:1280px;background:#fff}
header.top{display:flex;flex-wrap:wrap;gap:8px 24px;align-items:baseline;border-bottom:1px solid var(--line);
padding-bottom:8px;margin-bottom:16px}
header.top h1{font-size:20px;margin:0}
nav a{margin-right:14px}
h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid var(--line);padding-bottom:4px}
h3{font-size:15px;margin:18px 0 6px}
a{color:var(--info)}
code,.mono{font-family:ui-monospace,"DejaVu Sans Mono",Menlo,Consolas,monospace;font-size:12.5px;
overflow-wrap:anywhere}
.muted{color:var(--muted)}
.wrap{overflow-wrap:anywhere;word-break:break-word}
table{border-collapse:collapse;width:100%;margin:6px 0 12px}
th,td{border-bottom:1px solid var(--line);padding:5px 8px;text-align:left;vertical-align:top}
th{background:#f6f8fa;font-weight:600}
td{overflow-wrap:break-word}
.verdict{display:inline-block;min-width:88px;text-align:center;font-weight:700;letter-spacing:.03em;
border-radius:4px;padding:1px 8px;border:1px solid currentColor;white-space:nowrap;overflow-wrap:normal}
.v-ok{color:var(--ok);background:var(--ok-bg)}
.v-warning{color:var(--warning);background:var(--warning-bg)}
.v-critical{color:var(--critical);background:var(--critical-bg)}
.v-unknown{color:var(--unknown);background:var(--unknown-bg)}
.v-pending{color:var(--pending);background:var(--pending-bg)}
.v-info{color:var(--info);background:#ddf4ff}
.counts{display:flex;flex-wrap:wrap;gap:10px;margin:8px 0 16px}
.counts span{font-weight:600}
.headline{font-weight:600;margin:6px 0}
.cause{border:1px solid var(--line);border-left:6px solid var(--line);border-radius:4px;padding:8px 12px;margin:10px 0}
.cause.s-critical{border-left-color:var(--critical)}
.cause.s-warning{border-left-color:var(--warning)}
.cause.s-info{border-left-color:var(--info)}
.cause h3{margin:2px 0 6px}
.cause ol{margin:4px 0 4px 20px;padding:0}
.cause ul{margin:4px 0 4px 18px;padding:0}
.evidence li{overflow-wrap:anywhere}
.probe-tag{display:inline-block;font-size:11px;font-weight:700;text-transform:uppercase;color:var(--muted);
border:1px solid var(--line);border-radius:3px;padding:0 4px;margin-right:4px}
.chains{display:grid;grid-template-columns:repeat(auto-fit,minmax(320px,1fr));gap:16px}
.chain{border:1px solid var(--line);border-radius:4px;padding:8px 12px}
.chain h3{margin-top:2px}
.cert{border-top:1px dashed var(--line);padding:6px 0}
.cert:first-of-type{border-top:0}
.expired{color:var(--critical);font-weight:700}
.soon{color:var(--warning);font-weight:700}
.ladder-box{border:1px solid var(--line);border-radius:4px;padding:8px;margin:8px 0 14px}
.ladder-box svg{width:100%;max-width:820px;height:auto;display:block}
svg .life{stroke:#8c959f;stroke-width:2}
svg .actor{fill:#f6f8fa;stroke:#8c959f}
svg .actor-name{font:600 14px system-ui,sans-serif;fill:#1f2328}
svg .msg{font:13px system-ui,sans-serif;fill:#1f2328}
svg .det{font:11px ui-monospace,"DejaVu Sans Mono",monospace;fill:#57606a}
svg .arrow{stroke:#1f2328;stroke-width:1.5;fill:#1f2328}
svg .bad .arrow{stroke:#cf222e;fill:#cf222e}
svg .bad .msg{fill:#cf222e;font-weight:700}
svg .good .arrow{stroke:#1a7f37;fill:#1a7f37}
svg .good .msg{fill:#1a7f37;font-weight:700}
svg .note .msg{font-style:italic}
svg .bad.note .msg{fill:#cf222e}
footer{margin-top:32px;color:var(--muted);font-size:12px;border-top:1px solid var(--line);padding-top:8px}
@media print{
body{max-width:none;padding:0;font-size:11pt}
a{color:inherit;text-decoration:none}
nav,.noprint{display:none}
.cause,.chain,.ladder-box,tr{break-inside:avoid}
h2{break-after:avoid}
.verdict{border-width:2px}
}
"""


def _sha256(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


STYLE_HASH = _sha256(CSS)

# Served as a header by the daemon. frame-ancestors only works as a header (a <meta> policy with
# it makes browsers log an error), so the file version leaves it out.
_COMMON = ("default-src 'none'", f"style-src {STYLE_HASH}", "img-src data:", "base-uri 'none'",
           "form-action 'none'")
CSP_HEADER = "; ".join((*_COMMON, "frame-ancestors 'none'"))
CSP_META = "; ".join(_COMMON)

SECURITY_HEADERS = {
    "Content-Security-Policy": CSP_HEADER,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
