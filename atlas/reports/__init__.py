"""Browsable HTML reports: per-image attribution pages and the model report.

Pages are rendered from the Jinja templates beside this module; every image they show is
written next to them, and they reference nothing else (no CDN, no absolute paths).
"""
