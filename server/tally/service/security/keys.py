"""API keys, stored hashed (`tally keys create|list|revoke`).

A key reads `tk_<id>_<secret>`: the id finds its record, the SHA-256 of the whole key is
compared in constant time (the secret has 256 bits of entropy, so a plain hash is the right
tool; a slow password hash would only slow every request). The store is a JSON file outside
the repository (default <project>/.tally/keys.json, mode 0600), re-read when it changes, so a
key created or revoked while the server runs takes effect on the next request.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import logging
import os
import re
import secrets
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tally.errors import AuthUnavailable, CallerError, ConfigurationError

log = logging.getLogger("tally.auth")
SCOPES = ("meta", "query", "sql", "admin", "embed")
_KEY = re.compile(r"^tk_(?P<id>[0-9a-f]{12})_(?P<secret>[A-Za-z0-9_-]{20,100})$")


@dataclass(frozen=True)
class ApiKey:
    id: str
    name: str
    hash: str
    scopes: tuple[str, ...]
    claims: dict[str, Any] = field(default_factory=dict)
    created_at: str = ""
    revoked_at: str | None = None

    def public(self) -> dict[str, Any]:
        """What `tally keys list` shows: never the hash."""
        data = asdict(self)
        del data["hash"]
        return data


class KeyStore:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._stamp: tuple[int, int] | None = None
        self._keys: dict[str, ApiKey] = {}
        self._seen = False  # the file existed at some point in this process

    def keys(self, *, quiet: bool = False) -> dict[str, ApiKey]:
        """The keys as the file holds them now. AuthUnavailable (503) when the file is
        unreadable or corrupt, or gone after this process has seen it: a server must never
        take a lost key store for "no keys" and serve openly. Logged as an error unless
        `quiet` (a caller that reports it another way)."""
        try:
            st = os.stat(self.path)
            stamp: tuple[int, int] | None = (st.st_mtime_ns, st.st_size)
        except FileNotFoundError:
            stamp = None
        with self._lock:
            if stamp is None and self._seen:
                raise _unavailable(self.path, "is gone", quiet)
            if stamp != self._stamp:
                try:
                    self._keys = self._read() if stamp else {}
                except ConfigurationError as e:
                    self._stamp = None  # read again on the next request
                    raise _unavailable(self.path, e.message, quiet) from None
                self._stamp = stamp
                self._seen = self._seen or stamp is not None
            return self._keys

    def check(self) -> None:
        """ConfigurationError (naming the file) when the store exists but cannot be read."""
        if self.path.exists():
            self._read()

    def any_active(self, *, quiet: bool = False) -> bool:
        return any(k.revoked_at is None for k in self.keys(quiet=quiet).values())

    def verify(self, token: str) -> ApiKey | None:
        """The key `token` is, or None when it is not shaped like a key. Raises for a key
        that is unknown, wrong or revoked (the same message: nothing to learn from it)."""
        match = _KEY.match(token)
        if match is None:
            return None
        key = self.keys().get(match.group("id"))
        digest = hashlib.sha256(token.encode()).hexdigest()
        expected = key.hash if key is not None else "0" * 64
        if key is None or not hmac.compare_digest(digest, expected) or key.revoked_at:
            raise BadKey("The API key is not valid (unknown, wrong or revoked).")
        return key

    def create(self, name: str, scopes: list[str], claims: dict[str, Any]) -> tuple[ApiKey, str]:
        unknown = sorted(set(scopes) - set(SCOPES))
        if unknown:
            raise CallerError(f"Unknown scope(s) {unknown}; scopes are {', '.join(SCOPES)}.")
        key_id = secrets.token_hex(6)
        token = f"tk_{key_id}_{secrets.token_urlsafe(32)}"
        key = ApiKey(
            id=key_id,
            name=name,
            hash=hashlib.sha256(token.encode()).hexdigest(),
            scopes=tuple(dict.fromkeys(scopes)),
            claims=claims,
            created_at=_now(),
        )
        with self._lock:
            existing = self._read()
            if any(k.name == name and k.revoked_at is None for k in existing.values()):
                # A key's subject is its name (rate limits, jobs, the audit log): two active
                # keys of one name would share them.
                raise CallerError(f"An active key is already named {name!r}: revoke it first, "
                                  "or choose another name.")  # fmt: skip
            keys = {**existing, key_id: key}
            self._write(keys)
        return key, token

    def revoke(self, key_id: str) -> ApiKey:
        with self._lock:
            keys = self._read()
            match = [k for k in keys if k == key_id or keys[k].name == key_id]
            if not match:
                raise CallerError(f"No key {key_id!r} (`tally keys list` shows the ids).")
            key = keys[match[0]]
            keys[key.id] = ApiKey(**{**asdict(key), "scopes": key.scopes, "revoked_at": _now()})
            self._write(keys)
            return keys[key.id]

    def _read(self) -> dict[str, ApiKey]:
        if not self.path.exists():
            return {}
        try:
            data = json.loads(self.path.read_text())
            return {
                k["id"]: ApiKey(**{**k, "scopes": tuple(k["scopes"])}) for k in data["keys"]
            }
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise ConfigurationError(f"The key store {self.path} cannot be read: {e}.") from None

    def _write(self, keys: dict[str, ApiKey]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        body = json.dumps({"keys": [asdict(k) for k in keys.values()]}, indent=1)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(body)
        os.replace(tmp, self.path)


def _unavailable(path: Path, problem: str, quiet: bool) -> AuthUnavailable:
    if not quiet:
        log.error("API KEY STORE UNAVAILABLE: %s: %s; every request with an API key is "
                  "refused (503) until it is restored", path, problem.rstrip("."))  # fmt: skip
    return AuthUnavailable(
        "The server cannot check API keys right now (its key store is unavailable); it refuses "
        "requests until an operator restores it."
    )


class BadKey(CallerError):
    code = "unauthorized"
    status = 401


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
