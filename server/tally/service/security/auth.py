"""Authentication: a bearer token (an API key, a JWT, an embed token, the admin token) becomes a
`Caller` with its subject, scopes, claims and grant; every transport goes through here.

With no authentication configured (no JWT secret or settings, no active API key), every caller
is anonymous: the server then serves only on a loopback address unless started with
--insecure (see `tally serve`)."""

from __future__ import annotations

import hmac
import logging
from collections.abc import Mapping
from typing import Any

from tally.core.caller import Caller
from tally.errors import AuthUnavailable, ConfigurationError, Unauthorized
from tally.service.security.config import SecurityConfig
from tally.service.security.keys import KeyStore
from tally.service.security.policies import grant_for, roles_of
from tally.service.security.tokens import Tokens, scopes_of

log = logging.getLogger("tally.auth")
ALL_SCOPES = frozenset({"meta", "query", "sql", "admin", "embed"})
EMBED_SCOPES = frozenset({"meta", "query"})


class Authenticator:
    def __init__(
        self,
        config: SecurityConfig,
        jwt_secret: str | None,
        embed_secret: str | None,
        admin_token: str | None,
    ) -> None:
        self.config = config
        self.keys = KeyStore(config.keys_file) if config.keys_file else None
        self.tokens = Tokens(config.jwt, jwt_secret, embed_secret)
        self._admin = admin_token.encode() if admin_token else None

        # Once on, authentication stays on until the process restarts: whether a server is
        # open is decided once (at start, where `tally serve` refuses to serve openly off
        # loopback), never again from what the key store holds at a later request. Revoking
        # the last key then refuses everyone, rather than opening the server to everyone.
        try:
            self._required = self._configured_now(quiet=True)
        except AuthUnavailable:  # an unreadable key store: fail closed (reported at its use)
            self._required = True
        self._refusing_all = False

    def check_at_start(self) -> None:
        """ConfigurationError, naming the file and the fix, when the key store cannot be read
        (for `tally serve` at start; a request instead gets 503 naming no path)."""
        if self.keys is None or not self.config.api_keys:
            return
        try:
            self.keys.check()
        except ConfigurationError as e:
            raise ConfigurationError(
                f"{e.message.rstrip('.')}. Restore it, or move it away and create keys again "
                "with `tally keys create`."
            ) from None

    @property
    def configured(self) -> bool:
        """Whether callers must authenticate: a JWT setup, or an active key now or at any
        earlier point of this process."""
        if self._required:
            return True
        if self._configured_now():
            log.warning("authentication is on from now on: an API key was created")
            self._required = True
        return self._required

    def _configured_now(self, *, quiet: bool = False) -> bool:
        return self.tokens.enabled or bool(
            self.config.api_keys and self.keys is not None and self.keys.any_active(quiet=quiet)
        )

    def _check_anyone_can_get_in(self) -> None:
        """Log loudly, once per change, when authentication is on but no credential exists."""
        try:
            empty = not self._configured_now()
        except AuthUnavailable:  # logged by the key store
            return
        if empty and not self._refusing_all:
            log.error("AUTHENTICATION IS ON BUT NO API KEY IS ACTIVE AND NO JWT IS CONFIGURED: "
                      "every request is refused (401) until a key is created with `tally keys "
                      "create` or the server is restarted")  # fmt: skip
        self._refusing_all = empty

    def authenticate(self, token: str | None, transport: str, request_id: str) -> Caller:
        if not token:
            if self.configured:
                self._check_anyone_can_get_in()
                raise Unauthorized(
                    "This server needs a bearer token (Authorization: Bearer <API key or JWT>)."
                )
            # Open server (loopback only): everything, admin only while no admin token is set.
            scopes = ALL_SCOPES if self._admin is None else ALL_SCOPES - {"admin"}
            return self._caller(transport, request_id, None, scopes, {}, "anonymous")
        if len(token) > 8192 or not token.isascii() or not token.isprintable():
            raise Unauthorized("The token is malformed: send `Authorization: Bearer <token>`.")
        if not self.configured and not self._ours(token):
            # An open server (loopback): clients that always send a token (the dbt SL SDK)
            # work with any; what it may do is what an anonymous caller may.
            return self.authenticate(None, transport, request_id)
        if self._admin is not None and hmac.compare_digest(token.encode(), self._admin):
            return Caller(transport=transport, request_id=request_id, subject="admin-token",
                          scopes=ALL_SCOPES, extra={"auth": "admin-token"})  # fmt: skip
        if self.keys is not None and self.config.api_keys:
            key = self.keys.verify(token)
            if key is not None:
                return self._caller(transport, request_id, f"key:{key.name}",
                                    frozenset(key.scopes), key.claims, "api-key",
                                    key_id=key.id)  # fmt: skip
        kind, claims = self.tokens.verify(token)
        if kind == "embed":
            pinned = claims.get("tally") or {}
            scopes = frozenset(pinned.get("scopes") or EMBED_SCOPES) & EMBED_SCOPES
            subject = str(claims.get("sub", "?"))
            minter = subject.rsplit("/", 1)[0] if "/" in subject else None
            return self._caller(transport, request_id, f"embed:{subject}", scopes,
                                pinned.get("claims") or {}, "embed",
                                metrics=pinned.get("metrics"),
                                group=f"embed:{minter}" if minter else None)  # fmt: skip
        return self._caller(transport, request_id, f"jwt:{claims.get('sub', '?')}",
                            scopes_of(claims), claims, "jwt")  # fmt: skip

    def _caller(
        self,
        transport: str,
        request_id: str,
        subject: str | None,
        scopes: frozenset[str],
        claims: Mapping[str, Any],
        how: str,
        metrics: list[str] | None = None,
        key_id: str | None = None,
        group: str | None = None,
    ) -> Caller:
        grant = grant_for(self.config.policies, roles_of(claims, self.config.roles_claim),
                          claims, metrics)  # fmt: skip
        extra: dict[str, Any] = {"auth": how}
        if key_id:
            extra["key_id"] = key_id
        if group:
            extra["group"] = group
        if grant.policies:
            extra["policies"] = list(grant.policies)
        return Caller(
            transport=transport,
            request_id=request_id,
            subject=subject,
            access=grant.access(),
            scopes=scopes,
            claims=dict(claims),
            grant=None if grant.unrestricted else grant,
            extra=extra,
        )

    def _ours(self, token: str) -> bool:
        """Tokens that mean something even on an open server: the admin token, an API key, an
        embed token (its pinned claims still restrict the browser holding it)."""
        if self._admin is not None and hmac.compare_digest(token.encode(), self._admin):
            return True
        if token.startswith("tk_"):
            return True
        return self.tokens.is_embed(token)

    def for_claims(self, claims: Mapping[str, Any], scopes: frozenset[str] | None = None) -> Caller:
        """The caller a token with these claims would be (`tally policy check`)."""
        return self._caller("cli", "-", f"claims:{claims.get('sub', '?')}",
                            scopes or scopes_of(claims), claims, "policy-check")  # fmt: skip
