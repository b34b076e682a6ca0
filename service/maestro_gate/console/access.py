"""Who may see what in the console, and the checks every console request passes.

The roles are the API's: `auditor` reads the decision log (and the stack it is summed over),
`approver` acts on approvals (auditors may read the queue), `policy_admin` sees and changes the
enforcement mode and the emergency stops. `PAGES` is the one table: the navigation offers only
what it allows, and `reviewer()` refuses the rest with 403, whatever the browser asks for.

Every state change is a POST that carries the session's CSRF token (form field `csrf`, or the
`X-CSRF-Token` header from the console's scripts) and, when the browser sends one, an `Origin`
of this host; the session cookie is also `SameSite=Strict`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from starlette.requests import Request

from maestro_gate.api.services import services_of
from maestro_gate.console.sessions import COOKIE, Session, SessionStore
from maestro_gate.core.decision.callers import APPROVER, AUDITOR, POLICY_ADMIN, Caller
from maestro_gate.core.errors import Unauthenticated

PAGES: dict[str, frozenset[str]] = {
    "log": frozenset({AUDITOR}),
    "approvals": frozenset({APPROVER, AUDITOR}),
    "vote": frozenset({APPROVER}),
    "stack": frozenset({AUDITOR, POLICY_ADMIN}),
    "posture": frozenset({AUDITOR}),
    "controls": frozenset({POLICY_ADMIN}),
}
"""Page or action -> the roles that may use it."""

NAVIGATION = (
    ("log", "Decision log"),
    ("approvals", "Approvals"),
    ("stack", "MAESTRO stack"),
    ("posture", "Threat Mapper"),
    ("controls", "Mode and stops"),
)
CONSOLE_ROLES = frozenset().union(*PAGES.values())


class SignInRequired(Exception):
    """No live session: the browser is sent to the sign-in page."""


class NotAllowed(Exception):
    """The signed-in role may not use this page or action (403)."""

    def __init__(self, caller: Caller, page: str) -> None:
        wanted = " or ".join(sorted(PAGES[page]))
        super().__init__(
            f"{caller.principal} ({', '.join(sorted(caller.roles)) or 'no role'}) may not use "
            f"this: it needs the role {wanted}"
        )


class CsrfRefused(Exception):
    """A state change without this session's CSRF token, or from another origin (403)."""


@dataclass(frozen=True)
class Reviewer:
    """The signed-in caller of one console request and its session."""

    caller: Caller
    session: Session

    def may(self, page: str) -> bool:
        """True when the caller's roles allow `page`."""
        return not self.caller.roles.isdisjoint(PAGES[page])

    def navigation(self) -> list[tuple[str, str]]:
        """(page, title) of the pages this caller may open, in menu order."""
        return [(page, title) for page, title in NAVIGATION if self.may(page)]

    def view(self) -> dict[str, Any]:
        """What every template gets about the reviewer."""
        return {
            "principal": self.caller.principal,
            "roles": sorted(self.caller.roles),
            "csrf": self.session.csrf,
            "navigation": self.navigation(),
            "may": self.may,
        }


def sessions(request: Request) -> SessionStore:
    """The console's session store (on the application state)."""
    store: SessionStore = request.app.state.console_sessions
    return store


def reviewer(request: Request, page: str | None) -> Reviewer:
    """The signed-in caller, authenticated again now, if its roles allow `page` (None: any).

    Raises SignInRequired without a live session or when its credential is no longer valid
    (the session is then ended), NotAllowed when the role lacks the page.
    """
    token = request.cookies.get(COOKIE)
    store = sessions(request)
    session = store.get(token)
    if session is None:
        raise SignInRequired
    try:
        caller = services_of(request).authenticator.authenticate(session.credential, None)
    except Unauthenticated:
        store.close(token)
        raise SignInRequired from None
    signed_in = Reviewer(caller, session)
    if page is not None and not signed_in.may(page):
        services_of(request).refused("forbidden")
        raise NotAllowed(caller, page)
    return signed_in


def check_change(request: Request, session: Session, sent: str | None) -> None:
    """Refuse (CsrfRefused) a state change without the session's token or from elsewhere."""
    same_origin(request)
    token = sent or request.headers.get("x-csrf-token")
    if not session.csrf_matches(token):
        raise CsrfRefused("the form is stale or did not come from this console (CSRF token)")


def same_origin(request: Request) -> None:
    """Refuse a request whose `Origin` (when sent) is not this console's own."""
    origin = request.headers.get("origin")
    if origin is None:
        return
    own = f"{request.url.scheme}://{request.url.netloc}"
    if origin != own:
        raise CsrfRefused(f"a request from {origin} may not change anything here")
