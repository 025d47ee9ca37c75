"""HTML pages and the self-contained HTML report: escaping, the SVG handshake ladder, page layout.

:mod:`escape` is the only way HTML is built (every value escaped), :mod:`style` the one
stylesheet and its Content-Security-Policy, :mod:`view` reads report documents, :mod:`ladder`
draws handshakes, :mod:`sections` and :mod:`pages` lay out the pages.
"""
