"""The site's ``credits.html``: every credited image of the run's image folder (its
``credits.csv``, :mod:`atlas.credits`) with its author, licence and source, as text; the
other pages show each credit beside the image or crop itself."""

from __future__ import annotations

from collections.abc import Mapping
from html import escape
from pathlib import Path

from atlas.credits import Credit, source_link

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Credits: {title}</title>
<link rel="stylesheet" href="style.css">
<link rel="icon" href="data:,">
</head>
<body class="page">
<header><h1>Credits</h1><nav><a href="index.html">atlas</a></nav></header>
<main>
<p>The {count} images of this atlas are shown, whole or cropped, under the licences below,
with their authors' credits. Each page that shows one also names its credit beside it.</p>
<table id="credits">
<thead><tr><th>image</th><th>author</th><th>licence</th><th>source</th></tr></thead>
<tbody>
{rows}
</tbody>
</table>
</main>
</body>
</html>
"""


def write_credits_page(out: Path, credits: Mapping[str, Credit], title: str) -> str:
    """Write ``credits.html`` into the site ``out``; returns its path in the site."""
    rows = []
    for name, credit in sorted(credits.items()):
        link = source_link(credit.source)
        source = (
            f'<a href="{escape(link)}" rel="noopener noreferrer">{escape(credit.source)}</a>'
            if link
            else escape(credit.source)
        )
        cells = (escape(name), escape(credit.author), escape(credit.license), source)
        rows.append("<tr>" + "".join(f"<td>{cell}</td>" for cell in cells) + "</tr>")
    page = PAGE.format(title=escape(title), count=len(credits), rows="\n".join(rows))
    (out / "credits.html").write_text(page)
    return "credits.html"
