"""``atlas serve``: the built site over HTTP on the loopback interface.

Standard-library HTTP server with what a static site needs and nothing more: correct
MIME types (``.dzi`` as XML, modules as JavaScript), long caching for the immutable
tiles, icons and crops, a Content-Security-Policy that allows the site's own scripts,
styles and images only (no inline script or style), ``nosniff``, and no way out of the
site folder: ``..`` (also percent-encoded), absolute paths and symlinks that resolve
outside are 404, and folders are never listed.
"""

from __future__ import annotations

import http.server
import logging
import mimetypes
import posixpath
import threading
from functools import partial
from pathlib import Path
from urllib.parse import unquote, urlsplit

from atlas.errors import DataError

log = logging.getLogger(__name__)

TYPES = {
    ".dzi": "application/xml",
    ".js": "text/javascript",
    ".mjs": "text/javascript",
    ".json": "application/json",
    ".css": "text/css",
    ".png": "image/png",
    ".html": "text/html; charset=utf-8",
    ".map": "application/json",
    ".svg": "image/svg+xml",
}
IMMUTABLE = ("tiles/", "icons/", "crops/", "vendor/")
# Scripts, styles and everything else from the site itself only: no inline script or
# style, no other origin. Names from a data set can then never run as code here. The one
# inline style allowed is the empty one (its hash): the viewer's marker that keeps
# OpenSeadragon from injecting a stylesheet of its own.
EMPTY_STYLE = "'sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU='"
CONTENT_SECURITY_POLICY = (
    f"default-src 'self'; script-src 'self'; style-src 'self' {EMPTY_STYLE}; "
    "img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'none'; frame-ancestors 'self'"
)


class SiteHandler(http.server.SimpleHTTPRequestHandler):
    """Serves files under ``directory`` only."""

    def __init__(self, *args, directory: str, **kwargs) -> None:
        self.root = Path(directory).resolve()
        super().__init__(*args, directory=str(self.root), **kwargs)

    def resolve(self) -> Path | None:
        """The file a request names, or None if it is outside the site or not a file."""
        raw = unquote(urlsplit(self.path).path)
        if "\x00" in raw or "\\" in raw:
            return None
        parts = [p for p in posixpath.normpath("/" + raw).split("/") if p]
        if any(p in ("..", ".") for p in raw.split("/")):
            return None
        target = self.root.joinpath(*parts).resolve()
        if target != self.root and self.root not in target.parents:
            return None  # a symlink out of the site
        if target.is_dir():
            target = target / "index.html"
        return target if target.is_file() else None

    def send_head(self):
        target = self.resolve()
        if target is None:
            self.send_error(404, "Not found")
            return None
        try:
            handle = open(target, "rb")  # noqa: SIM115 - the base class closes it after copying
        except OSError:
            self.send_error(404, "Not found")
            return None
        size = target.stat().st_size
        self.send_response(200)
        self.send_header(
            "Content-Type",
            TYPES.get(
                target.suffix, mimetypes.guess_type(target.name)[0] or "application/octet-stream"
            ),
        )
        self.send_header("Content-Length", str(size))
        relative = target.relative_to(self.root).as_posix()
        cache = "public, max-age=86400, immutable" if relative.startswith(IMMUTABLE) else "no-cache"
        self.send_header("Cache-Control", cache)
        self.end_headers()
        return handle

    def end_headers(self) -> None:
        # On every response, error pages included.
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        super().end_headers()

    def list_directory(self, path):
        self.send_error(404, "Not found")
        return None

    def log_message(self, format, *args) -> None:
        log.debug("%s %s", self.address_string(), format % args)


def make_server(
    site: str | Path, *, port: int = 8000, host: str = "127.0.0.1"
) -> http.server.ThreadingHTTPServer:
    """A server for ``site`` bound to ``host``:``port`` (port 0: any free port)."""
    root = Path(site)
    if not (root / "index.html").is_file():
        raise DataError(f"{root} is not a built site (no index.html): run `atlas viewer` first")
    return http.server.ThreadingHTTPServer((host, port), partial(SiteHandler, directory=str(root)))


def serve_in_background(site: str | Path, *, port: int = 0, host: str = "127.0.0.1"):
    """Start a server in a daemon thread; returns (server, base URL)."""
    server = make_server(site, port=port, host=host)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    bound_host, bound_port = server.server_address[:2]
    return server, f"http://{bound_host}:{bound_port}/"
