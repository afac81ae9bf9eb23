"""Who may do what: users with roles, argon2-hashed passwords, API tokens and login sessions.

Roles are ordered: a viewer reads, an operator also steers the fleet and works stations,
an admin also manages users and configuration. Passwords are stored only as argon2
hashes (slow on purpose, checked once per login); a login hands out a random session
token, and API tokens are configured as their sha256 (fast to check on every request,
useless to a reader of the config file).

    python -m fleet.service.auth hash      # prompts for a password, prints its argon2 hash
    python -m fleet.service.auth token     # prints a new API token and its sha256
"""

from __future__ import annotations

import hashlib
import secrets
import sys
import threading
import time
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from fleet.service.config import User

ROLES = ("viewer", "operator", "admin")
_hasher = PasswordHasher()


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class Principal:
    name: str
    role: str

    def may(self, role: str) -> bool:
        return ROLES.index(self.role) >= ROLES.index(role)


class Auth:
    def __init__(self, users: list[User], session_s: float, clock=time.monotonic) -> None:
        self._users = {u.name: u for u in users}
        self._tokens = {u.token_sha256: u for u in users if u.token_sha256}
        self._sessions: dict[str, tuple[Principal, float]] = {}  # sha256(token) -> (who, expiry)
        self._session_s = session_s
        self._clock = clock
        self._lock = threading.Lock()

    def login(self, name: str, password: str) -> str | None:
        """A new session token, or None for a wrong name or password (not saying which)."""
        user = self._users.get(name)
        if user is None or user.password_hash is None:
            _hasher.hash(password)  # same cost either way: no user enumeration by timing
            return None
        try:
            _hasher.verify(user.password_hash, password)
        except (VerificationError, InvalidHashError):
            return None
        token = secrets.token_urlsafe(32)
        with self._lock:
            self._sessions[token_digest(token)] = (Principal(user.name, user.role), self._clock() + self._session_s)
        return token

    def logout(self, token: str) -> None:
        with self._lock:
            self._sessions.pop(token_digest(token), None)

    def identify(self, token: str) -> Principal | None:
        digest = token_digest(token)
        user = self._tokens.get(digest)
        if user is not None:
            return Principal(user.name, user.role)
        with self._lock:
            entry = self._sessions.get(digest)
            if entry is None:
                return None
            if entry[1] < self._clock():
                del self._sessions[digest]
                return None
            return entry[0]


def _main(argv: list[str]) -> int:
    if argv[:1] == ["hash"]:
        import getpass

        print(hash_password(getpass.getpass("password: ")))
        return 0
    if argv[:1] == ["token"]:
        token = secrets.token_urlsafe(32)
        print(f"token:        {token}\ntoken_sha256: {token_digest(token)}")
        return 0
    print("usage: python -m fleet.service.auth hash|token", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
