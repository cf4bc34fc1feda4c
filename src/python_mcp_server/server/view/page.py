"""The view's HTML: one self-contained page (no CDN, no external file) per use.

Everything a kernel produced is put into the page as text (``textContent``) or as a
``data:`` image, never as markup, and a nonce-based Content-Security-Policy allows only the
page's own script and style: kernel output cannot script the page. The same renderer
(``assets/renderer.js``) serves the browser view and the MCP App; both follow the session's
server-sent events (``assets/follow.js``), the app once the host hands it the stream's link
(``assets/app.js``).
"""

from __future__ import annotations

import html
import secrets
from importlib import resources

_ASSETS = resources.files(__package__) / "assets"


def _asset(name: str) -> str:
    return (_ASSETS / name).read_text(encoding="utf-8")


def _script(*parts: str) -> str:
    return "\n".join(_asset(part) for part in parts)


def csp(nonce: str) -> str:
    """The page's Content-Security-Policy: its own script and style, data: images, same-origin
    connections (the event stream), nothing else."""
    return (
        f"default-src 'none'; script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}'; "
        "img-src data:; connect-src 'self'; base-uri 'none'; form-action 'none'; "
        "frame-ancestors 'none'"
    )


def _document(title: str, body: str, script: str, nonce: str, data: dict[str, str]) -> str:
    attributes = "".join(f' data-{key}="{html.escape(value)}"' for key, value in data.items())
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        '<meta name=viewport content="width=device-width,initial-scale=1">'
        f"<title>{html.escape(title)}</title><style nonce={nonce}>{_asset('view.css')}</style>"
        "</head>"
        f"<body{attributes}>{body}<script nonce={nonce}>{script}</script></body></html>"
    )


def _session_body(session_id: str) -> str:
    return (
        f"<header><h1>Session {html.escape(session_id)}</h1><span id=status>connecting</span>"
        "<a href='../../sessions'>all sessions</a></header>"
        "<div id=ended></div><main><section id=cells></section>"
        "<aside><h3>Variables</h3><table id=variables></table></aside></main>"
    )


def session_page(session_id: str) -> tuple[str, str]:
    """(html, nonce) of the browser view of one session."""
    nonce = secrets.token_urlsafe(16)
    body = _session_body(session_id)
    script = _script("renderer.js", "follow.js") + "\nfollow('events');"
    page = _document(f"Session {session_id}", body, script, nonce, {"session": session_id})
    return page, nonce


def app_page() -> str:
    """The MCP App resource: the same renderer, fed by the host's tool-result message."""
    nonce = secrets.token_urlsafe(16)
    body = (
        "<header><h1>Python session</h1><span id=status>waiting for the host</span></header>"
        "<div id=ended></div><main><section id=cells></section>"
        "<aside><h3>Variables</h3><table id=variables></table></aside></main>"
    )
    script = _script("renderer.js", "follow.js", "app.js")
    return _document("Python session", body, script, nonce, {})


def list_page(sessions: list[dict[str, str]]) -> tuple[str, str]:
    """(html, nonce) of the list of the viewer's sessions, each linking to its view."""
    nonce = secrets.token_urlsafe(16)
    rows = "".join(
        "<tr><td><a href='sessions/{0}/view'>{0}</a></td><td>{1}</td><td>{2}</td></tr>".format(
            html.escape(s["session_id"], quote=True),
            html.escape(s["status"]),
            html.escape(s["description"]),
        )
        for s in sessions
    )
    body = (
        "<header><h1>Sessions</h1></header><main><table id=sessions>"
        f"<tr><th>Session</th><th>Status</th><th>Description</th></tr>{rows}</table></main>"
    )
    return _document("Sessions", body, "", nonce, {"count": str(len(sessions))}), nonce
