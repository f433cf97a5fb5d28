"""Staff accounts, logins and the guards every route passes.

Passwords are argon2id hashes (argon2-cffi). The session is a cookie signed by Starlette's
SessionMiddleware (itsdangerous); it holds the user name and a CSRF token, and the account is
looked up on every request, so disabling it ends its sessions at once. Every form and API write
must send the session's CSRF token (form field ``csrf_token`` or header ``X-CSRF-Token``).
Wrong passwords are counted per user name: after ``login_max_failures`` in a row the name is
locked for ``login_lockout_s`` (429, even with the right password), which slows a guesser to a
few tries per lockout. Names, not client addresses: behind the TLS proxy every client has the
proxy's address, and one guesser must not lock the whole office out.
"""

from __future__ import annotations

import functools
import hmac
import secrets
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import quote

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from sync.office.console_db import (
    ROLES,
    User,
    get_user,
    set_password_hash,
)
from sync.office.store_api import OfficeStore

HASHER = PasswordHasher()
_RANK = {role: i for i, role in enumerate(ROLES)}
# Verified against when the name is unknown, so that a wrong name costs as long as a wrong
# password and the answer's timing does not tell which names exist.
_DUMMY_HASH = HASHER.hash(secrets.token_hex(16))


def hash_password(password: str) -> str:
    return HASHER.hash(password)


def check_password(store: OfficeStore, name: str, password: str) -> User | None:
    """The active user with this name and password, else None."""
    user = get_user(store, name)
    try:
        HASHER.verify(user.password_hash if user else _DUMMY_HASH, password)
    except (VerificationError, InvalidHashError):
        return None
    if user is None or user.disabled:
        return None
    if HASHER.check_needs_rehash(user.password_hash):
        set_password_hash(store, name, hash_password(password))
    return user


@dataclass
class _Failures:
    count: int = 0
    locked_until: float = 0.0


class LoginThrottle:
    """Counts wrong passwords per user name and locks a name after too many in a row."""

    def __init__(self, max_failures: int, lockout_s: float) -> None:
        self.max_failures = max_failures
        self.lockout_s = lockout_s
        self._lock = threading.Lock()
        self._by_name: dict[str, _Failures] = {}

    def wait_s(self, name: str) -> float:
        """Seconds until ``name`` may try again (0: now)."""
        with self._lock:
            f = self._by_name.get(name)
            return max(0.0, f.locked_until - time.monotonic()) if f else 0.0

    def failed(self, name: str) -> None:
        with self._lock:
            f = self._by_name.setdefault(name, _Failures())
            f.count += 1
            if f.count >= self.max_failures:
                f.locked_until = time.monotonic() + self.lockout_s
                f.count = 0

    def succeeded(self, name: str) -> None:
        with self._lock:
            self._by_name.pop(name, None)


def csrf_token(request: Request) -> str:
    """The session's CSRF token, made on first use."""
    token = request.session.get("csrf")
    if not isinstance(token, str):
        token = secrets.token_urlsafe(32)
        request.session["csrf"] = token
    return token


def csrf_ok(request: Request, sent: str | None) -> bool:
    token = request.session.get("csrf")
    return isinstance(token, str) and isinstance(sent, str) and hmac.compare_digest(token, sent)


def start_session(request: Request, user: User) -> None:
    """A fresh session for the user: a new CSRF token, nothing kept from before the login."""
    lang = request.session.get("lang")
    request.session.clear()
    request.session.update({"user": user.name, "csrf": secrets.token_urlsafe(32)})
    if lang:
        request.session["lang"] = lang


def session_user(request: Request) -> User | None:
    name = request.session.get("user")
    if not isinstance(name, str):
        return None
    store: OfficeStore = request.app.state.store
    user = get_user(store, name)
    if user is None or user.disabled:
        request.session.pop("user", None)
        return None
    return user


Handler = Callable[[Request], Awaitable[Response]]


def needs(role: str, *, write: bool = False) -> Callable[[Handler], Handler]:
    """Route guard: a session (pages redirect to /login, the API answers 401), on writes the
    CSRF token (403), and at least ``role`` (403)."""

    def wrap(handler: Handler) -> Handler:
        @functools.wraps(handler)
        async def guarded(request: Request) -> Response:
            user = session_user(request)
            api = request.url.path.startswith("/api/")
            if user is None:
                if api:
                    return JSONResponse({"error": "login required"}, status_code=401)
                target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
                return RedirectResponse(f"/login?next={quote(target, safe='/')}", 303)
            if write:
                sent = request.headers.get("x-csrf-token")
                if sent is None and "form" in request.headers.get("content-type", ""):
                    sent = str((await request.form()).get("csrf_token") or "")
                if not csrf_ok(request, sent):
                    return JSONResponse({"error": "missing or wrong CSRF token"}, 403)
            if _RANK[user.role] < _RANK[role]:
                return JSONResponse({"error": f"needs the {role} role"}, status_code=403)
            request.state.user = user
            return await handler(request)

        return guarded

    return wrap


def safe_next(target: str | None) -> str:
    """Only a path on this site after login (never ``//evil`` or a full URL)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target
