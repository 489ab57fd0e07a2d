"""The built-in dashboard: static files (HTML, CSS, ES modules) served from memory.

The files sit next to this module and ship as package data. They are read once, when this module
is imported, each with its gzip form and a strong ETag, so a request costs a dictionary lookup:
``GET /`` answers index.html and ``GET /ui/{name}`` one of the other files (a fixed allow-list:
nothing else in the folder, and no path, can be asked for). They hold code, never data, so the
route table leaves them open and exempt from rate limits; the data comes from the API with the
user's credentials. ``FLOWENGINE_DASHBOARD=0`` makes both routes answer 404.
"""

from __future__ import annotations

import gzip
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from ...errors import NotFound
from ..keys import CONFIG

__all__ = ["ASSETS", "index", "asset"]

_FOLDER = Path(__file__).parent
# The files a browser may ask for, with their media types; index.html is served at / only.
_TYPES = {
    "index.html": "text/html; charset=utf-8",
    "app.css": "text/css; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "api.js": "text/javascript; charset=utf-8",
    "graph.js": "text/javascript; charset=utf-8",
    "views.js": "text/javascript; charset=utf-8",
    "run.js": "text/javascript; charset=utf-8",
}

# Nothing but this origin's files and API: an injected script could otherwise send the token
# elsewhere. Text reaches the DOM through textContent only, and no inline script or style.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)


@dataclass(frozen=True)
class Asset:
    """One file as served: its bytes, their gzip form, the ETag of each, its media type."""

    body: bytes
    gzipped: bytes
    etag: str
    gzip_etag: str
    content_type: str


_CSS_COMMENT = re.compile(rb"/\*.*?\*/", re.DOTALL)


def _compact(name: str, source: bytes) -> bytes:
    """The file as sent: comment lines and indentation are for the people reading the source,
    not for browsers (a fifth of the bytes). No minifier, no build step: whole comment lines
    only, which these files never start inside a string."""
    if name.endswith(".css"):
        source = _CSS_COMMENT.sub(b"", source)
    elif not name.endswith(".js"):
        return source
    lines = (line.strip() for line in source.splitlines())
    return b"\n".join(line for line in lines if line and not line.startswith(b"//")) + b"\n"


def _load(name: str, content_type: str) -> Asset:
    body = _compact(name, (_FOLDER / name).read_bytes())
    digest = hashlib.sha256(body).hexdigest()[:32]
    # mtime=0: the same bytes on every start, so the gzip form is as stable as its ETag.
    gzipped = gzip.compress(body, compresslevel=9, mtime=0)
    # Two representations, two strong ETags: a cache must never serve one for the other.
    return Asset(body, gzipped, f'"{digest}"', f'"{digest}-gzip"', content_type)


ASSETS: dict[str, Asset] = {name: _load(name, content_type) for name, content_type in _TYPES.items()}


def _accepts_gzip(request: web.Request) -> bool:
    for part in request.headers.get("Accept-Encoding", "").split(","):
        coding, _, params = part.strip().partition(";")
        if coding.strip().lower() == "gzip":
            return params.replace(" ", "") not in ("q=0", "q=0.0", "q=0.00", "q=0.000")
    return False


def _not_modified(request: web.Request, etags: tuple[str, str]) -> bool:
    header = request.headers.get("If-None-Match")
    if header is None:
        return False
    offered = {tag.strip().removeprefix("W/") for tag in header.split(",")}
    return "*" in offered or not offered.isdisjoint(etags)


def _serve(request: web.Request, name: str) -> web.Response:
    if not request.app[CONFIG].dashboard:
        raise web.HTTPNotFound()  # as if the route did not exist: the middleware words the 404
    found = ASSETS[name]
    gzipped = _accepts_gzip(request)
    headers = {
        "Cache-Control": "no-cache",  # revalidate every time: an upgrade is seen at once
        "ETag": found.gzip_etag if gzipped else found.etag,
        "Vary": "Accept-Encoding",
        "Content-Security-Policy": CONTENT_SECURITY_POLICY,
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
    }
    if _not_modified(request, (found.etag, found.gzip_etag)):
        return web.Response(status=304, headers=headers)
    if gzipped:
        headers["Content-Encoding"] = "gzip"
    media_type, _, charset = found.content_type.partition("; charset=")
    return web.Response(
        body=found.gzipped if gzipped else found.body, headers=headers, content_type=media_type, charset=charset or None
    )


async def index(request: web.Request) -> web.Response:
    """``GET /``: the dashboard's page."""
    return _serve(request, "index.html")


async def asset(request: web.Request) -> web.Response:
    """``GET /ui/{name}``: one of the dashboard's files."""
    name = request.match_info["name"]
    if name == "index.html" or name not in ASSETS:
        raise NotFound(f"no dashboard file {name!r}")
    return _serve(request, name)
