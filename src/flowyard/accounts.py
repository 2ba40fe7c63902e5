"""Users, API tokens and browser sessions.

Passwords are bcrypt hashes. API tokens and session ids are long random strings, so they
are stored as SHA-256 digests (a slow hash would cost every request ~0.2 s for no gain)
and shown once. Lookups are cached for a few seconds and the cache is dropped on every
revocation, so a revoked token stops working at once in this process.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from dataclasses import dataclass

import bcrypt
from sqlalchemy import Engine, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from flowyard.errors import AlreadyExists, Invalid, NotFound, TooManyRequests, Unauthorized
from flowyard.store.resources import check_name, now
from flowyard.store.tables import sessions, tokens, users

SESSION_SECONDS = 12 * 3600
_CACHE_SECONDS = 5.0
_FREE_FAILURES = 5


@dataclass(frozen=True)
class Principal:
    """Who is calling: a user, and the namespace a token is limited to (if any)."""

    user: str
    admin: bool
    token_namespace: str | None = None
    session: str | None = None
    csrf: str | None = None


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _check_password(password: object) -> str:
    if not isinstance(password, str) or len(password) < 8:
        raise Invalid("password must be at least 8 characters")
    if len(password.encode()) > 72:
        raise Invalid("password must be at most 72 bytes (bcrypt's limit)")
    return password


class Accounts:
    """The user, token and session tables, plus login throttling."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._cache: dict[str, tuple[float, Principal]] = {}
        self._failures: dict[str, tuple[int, float]] = {}
        self._lock = threading.Lock()

    def _forget(self) -> None:
        self._cache.clear()

    # -- users -----------------------------------------------------------------------------

    def add_user(self, name: str, password: str, admin: bool = False) -> dict:
        check_name(name, "user name", 63)
        hashed = bcrypt.hashpw(_check_password(password).encode(), bcrypt.gensalt()).decode()
        try:
            with self.engine.begin() as conn:
                conn.execute(
                    insert(users).values(
                        name=name, password_hash=hashed, admin=admin, disabled=False, created_at=now()
                    )
                )
        except IntegrityError as e:
            raise AlreadyExists(f"user '{name}' already exists") from e
        return self.get_user(name)

    def get_user(self, name: str) -> dict:
        with self.engine.connect() as conn:
            row = conn.execute(select(users).where(users.c.name == name)).first()
        if row is None:
            raise NotFound(f"user '{name}' not found")
        return {"name": row.name, "admin": row.admin, "disabled": row.disabled, "createdAt": row.created_at}

    def list_users(self) -> list[dict]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(users.c.name).order_by(users.c.name)).scalars().all()
        return [self.get_user(n) for n in rows]

    def has_users(self) -> bool:
        with self.engine.connect() as conn:
            return conn.execute(select(users.c.name).limit(1)).first() is not None

    def update_user(self, name: str, *, password: str | None = None, disabled: bool | None = None,
                    admin: bool | None = None) -> dict:
        values: dict = {}
        if password is not None:
            values["password_hash"] = bcrypt.hashpw(_check_password(password).encode(), bcrypt.gensalt()).decode()
        if disabled is not None:
            values["disabled"] = disabled
        if admin is not None:
            values["admin"] = admin
        self.get_user(name)
        if values:
            with self.engine.begin() as conn:
                conn.execute(update(users).where(users.c.name == name).values(**values))
                if password is not None or disabled:
                    conn.execute(delete(sessions).where(sessions.c.user == name))
            self._forget()
        return self.get_user(name)

    # -- passwords and throttling ----------------------------------------------------------

    def verify_password(self, name: str, password: str, client: str = "") -> Principal:
        """The user if the password is right; slows down repeated failures per user and client."""
        keys = [f"user:{name}", f"client:{client}"]
        wait = max(self._wait(k) for k in keys)
        if wait > 0:
            raise TooManyRequests(f"too many failed logins: try again in {int(wait) + 1} s", retry_after=int(wait) + 1)
        with self.engine.connect() as conn:
            row = conn.execute(select(users).where(users.c.name == name)).first()
        stored = row.password_hash.encode() if row else bcrypt.gensalt()  # same work for unknown users
        ok = isinstance(password, str) and bcrypt.checkpw(password.encode()[:72], stored) and row is not None
        if not ok or row.disabled:
            for k in keys:
                self._fail(k)
            raise Unauthorized("wrong user name or password" if not ok else f"user '{name}' is disabled")
        for k in keys:
            self._failures.pop(k, None)
        return Principal(row.name, row.admin)

    def _wait(self, key: str) -> float:
        count, last = self._failures.get(key, (0, 0.0))
        if count < _FREE_FAILURES:
            return 0.0
        return last + min(2 ** (count - _FREE_FAILURES), 300) - time.time()

    def _fail(self, key: str) -> None:
        with self._lock:
            count, _ = self._failures.get(key, (0, 0.0))
            self._failures[key] = (count + 1, time.time())

    # -- tokens ----------------------------------------------------------------------------

    def create_token(self, user: str, name: str = "", namespace: str | None = None) -> dict:
        """A new API token; the secret is in the answer and nowhere else."""
        token_id = secrets.token_hex(6)
        secret = f"fy_{token_id}_{secrets.token_urlsafe(32)}"
        row = {"id": token_id, "user": user, "name": name or "token", "hash": _digest(secret),
               "namespace": namespace, "created_at": now(), "last_used_at": None}
        with self.engine.begin() as conn:
            conn.execute(insert(tokens).values(**row))
        return {**self._token_info(row), "token": secret}

    @staticmethod
    def _token_info(row: dict) -> dict:
        return {"id": row["id"], "user": row["user"], "name": row["name"], "namespace": row["namespace"],
                "createdAt": row["created_at"], "lastUsedAt": row["last_used_at"]}

    def list_tokens(self, user: str | None) -> list[dict]:
        query = select(tokens).order_by(tokens.c.created_at)
        if user is not None:
            query = query.where(tokens.c.user == user)
        with self.engine.connect() as conn:
            return [self._token_info(r._asdict()) for r in conn.execute(query).all()]

    def revoke_token(self, token_id: str, user: str | None) -> None:
        query = delete(tokens).where(tokens.c.id == token_id)
        if user is not None:
            query = query.where(tokens.c.user == user)
        with self.engine.begin() as conn:
            if not conn.execute(query).rowcount:
                raise NotFound(f"token '{token_id}' not found")
        self._forget()

    def revoke_named(self, name: str) -> int:
        """Revoke every token called `name` (tokens the platform minted for one purpose); how many."""
        with self.engine.begin() as conn:
            count = conn.execute(delete(tokens).where(tokens.c.name == name)).rowcount
        self._forget()
        return count

    def authenticate_token(self, secret: str) -> Principal:
        cached = self._cache.get(secret)
        if cached and cached[0] > time.monotonic():
            return cached[1]
        parts = secret.split("_")
        if len(parts) < 3 or parts[0] != "fy":
            raise Unauthorized("invalid token: create one with `flowyard token create` or POST /api/v1/auth/token")
        with self.engine.connect() as conn:
            row = conn.execute(
                select(tokens.c.hash, tokens.c.namespace, users.c.name, users.c.admin, users.c.disabled)
                .join(users, users.c.name == tokens.c.user)
                .where(tokens.c.id == parts[1])
            ).first()
        if row is None or not hmac.compare_digest(row.hash, _digest(secret)) or row.disabled:
            raise Unauthorized("invalid or revoked token")
        with self.engine.begin() as conn:
            conn.execute(update(tokens).where(tokens.c.id == parts[1]).values(last_used_at=now()))
        principal = Principal(row.name, row.admin, token_namespace=row.namespace)
        self._cache[secret] = (time.monotonic() + _CACHE_SECONDS, principal)
        return principal

    # -- sessions --------------------------------------------------------------------------

    def create_session(self, user: str) -> tuple[str, str]:
        """A new browser session: (session id for the cookie, CSRF token for forms)."""
        sid, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(24)
        with self.engine.begin() as conn:
            conn.execute(delete(sessions).where(sessions.c.expires_at < int(time.time())))
            conn.execute(insert(sessions).values(id=_digest(sid), user=user, csrf=csrf,
                                                 expires_at=int(time.time()) + SESSION_SECONDS))
        return sid, csrf

    def authenticate_session(self, sid: str) -> Principal:
        key = "s:" + sid
        cached = self._cache.get(key)
        if cached and cached[0] > time.monotonic():
            return cached[1]
        with self.engine.connect() as conn:
            row = conn.execute(
                select(sessions.c.csrf, sessions.c.expires_at, users.c.name, users.c.admin, users.c.disabled)
                .join(users, users.c.name == sessions.c.user)
                .where(sessions.c.id == _digest(sid))
            ).first()
        if row is None or row.expires_at < time.time() or row.disabled:
            raise Unauthorized("your session has ended: log in again")
        principal = Principal(row.name, row.admin, session=_digest(sid), csrf=row.csrf)
        self._cache[key] = (time.monotonic() + _CACHE_SECONDS, principal)
        return principal

    def end_session(self, sid: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(delete(sessions).where(sessions.c.id == _digest(sid)))
        self._forget()
