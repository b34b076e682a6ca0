"""Rendering console pages: the package's Jinja2 templates, security headers, static files.

Nothing is loaded from outside the package: the stylesheet and the scripts are served from
`console/static/` by name, and the Content-Security-Policy allows no other origin.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.responses import HTMLResponse, Response

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",  # no-referrer would make form POSTs send `Origin: null`
    "Cache-Control": "no-store",
}
STATIC_TYPES = {
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".png": "image/png",
}


@cache
def environment() -> Environment:
    """The template environment (autoescaped HTML), built once per process."""
    env = Environment(
        loader=PackageLoader("maestro_gate.console", "templates"),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["pretty"] = lambda value: json.dumps(value, indent=2, sort_keys=True)
    return env


def page(template: str, status: int = 200, **context: Any) -> HTMLResponse:
    """A rendered page with the console's security headers."""
    html = environment().get_template(template).render(**context)
    return HTMLResponse(html, status_code=status, headers=SECURITY_HEADERS)


def secured(response: Response) -> Response:
    """`response` with the console's security headers added."""
    response.headers.update(SECURITY_HEADERS)
    return response


@cache
def static_file(name: str) -> tuple[bytes, str] | None:
    """(bytes, content type) of a file in `console/static/`, or None for any other name."""
    suffix = name[name.rfind(".") :] if "." in name else ""
    if suffix not in STATIC_TYPES or "/" in name or name.startswith("."):
        return None
    path = resources.files("maestro_gate.console").joinpath("static", name)
    if not path.is_file():
        return None
    return path.read_bytes(), STATIC_TYPES[suffix]
