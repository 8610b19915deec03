"""JWT bearer tokens (PyJWT, never hand-rolled) and the server's own embed tokens.

* Tokens from the caller's identity provider: HS256/384/512 with TALLY_JWT_SECRET, or RS/ES with
  a public key file or a local JWKS file; `exp` required (at most `max_lifetime_seconds` after
  `iat`), `nbf`, `iss`, `aud` checked with a small leeway; `alg: none` and any algorithm not
  configured are refused.
* Embed tokens: minted by `POST /api/v1/embed-tokens`, HS256 with the embed secret
  (TALLY_EMBED_SECRET; else derived from TALLY_JWT_SECRET; else one per process), marked with
  `kid: tally-embed`. They pin claims and an allow-list of metrics that the browser holding
  them cannot widen (any change breaks the signature).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Mapping
from typing import Any

import jwt

from tally.errors import CallerError, ConfigurationError, Unauthorized
from tally.service.security.config import JwtConfig

EMBED_KID = "tally-embed"
EMBED_ISSUER = "tally"
EMBED_AUDIENCE = "tally-embed"
MAX_EMBED_TTL = 24 * 3600


class Tokens:
    def __init__(
        self, config: JwtConfig | None, secret: str | None, embed_secret: str | None
    ) -> None:
        if config is None and secret:
            config = JwtConfig()  # TALLY_JWT_SECRET alone is enough to turn HS256 on
        self.config = config
        self._secret = secret
        self._jwks: jwt.PyJWKSet | None = None
        self._public_key: str | None = None
        if config is not None:
            if any(a.startswith("HS") for a in config.algorithms) and not secret:
                raise ConfigurationError(
                    f"JWT algorithms {', '.join(config.algorithms)} need TALLY_JWT_SECRET in the "
                    "environment (never in a file of the repository)."
                )
            if secret and len(secret.encode()) < 32:
                raise ConfigurationError(
                    "TALLY_JWT_SECRET is shorter than 32 bytes, too short for HMAC-SHA256 "
                    "(RFC 7518): use a long random value, e.g. `openssl rand -hex 32`."
                )
            if config.public_key_file is not None:
                self._public_key = config.public_key_file.read_text()
            if config.jwks_file is not None:
                try:
                    self._jwks = jwt.PyJWKSet.from_dict(json.loads(config.jwks_file.read_text()))
                except (ValueError, jwt.PyJWTError) as e:
                    raise ConfigurationError(f"{config.jwks_file}: not a JWKS: {e}.") from None
        if embed_secret:
            self._embed = embed_secret.encode()
        elif secret:
            self._embed = hmac.new(secret.encode(), b"tally-embed", hashlib.sha256).digest()
        else:
            self._embed = secrets.token_bytes(32)  # one process only: set TALLY_EMBED_SECRET
        self.embed_secret_is_shared = bool(embed_secret or secret)

    @property
    def enabled(self) -> bool:
        return self.config is not None

    def is_embed(self, token: str) -> bool:
        try:
            return jwt.get_unverified_header(token).get("kid") == EMBED_KID
        except jwt.PyJWTError:
            return False

    def verify(self, token: str) -> tuple[str, dict[str, Any]]:
        """("embed" | "jwt", claims) of a valid token; Unauthorized with the reason otherwise."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise Unauthorized(
                "The token is neither an API key nor a JWT: send `Authorization: Bearer "
                "<API key or JWT>`."
            ) from None
        if str(header.get("alg", "")).lower() == "none":
            raise Unauthorized("Unsigned tokens (alg: none) are refused.")
        if header.get("kid") == EMBED_KID:
            return "embed", self._decode(token, self._embed, ["HS256"], EMBED_ISSUER,
                                         EMBED_AUDIENCE, 5.0)  # fmt: skip
        if self.config is None:
            raise Unauthorized("JWT bearer tokens are not configured on this server.")
        algorithm = header.get("alg")
        if algorithm not in self.config.algorithms:
            raise Unauthorized(f"Token algorithm {str(algorithm)[:20]!r} is not accepted here "
                               f"({', '.join(self.config.algorithms)}).")  # fmt: skip
        key: Any = self._secret
        if not str(algorithm).startswith("HS"):
            key = self._public_key
            if self._jwks is not None:
                key = self._jwk(header.get("kid"))
        return "jwt", self._decode(token, key, list(self.config.algorithms), self.config.issuer,
                                   self.config.audience, self.config.leeway_seconds)  # fmt: skip

    def _jwk(self, kid: Any) -> Any:
        assert self._jwks is not None
        for jwk in self._jwks.keys:
            if kid is None or jwk.key_id == kid:
                return jwk.key
        raise Unauthorized("The token's key id (kid) is not in the configured JWKS.")

    def _decode(
        self,
        token: str,
        key: Any,
        algorithms: list[str],
        issuer: str | None,
        audience: str | None,
        leeway: float,
    ) -> dict[str, Any]:
        options = {"require": ["exp"], "verify_aud": audience is not None}
        try:
            claims = jwt.decode(token, key, algorithms=algorithms, issuer=issuer,
                                audience=audience, leeway=leeway, options=options)  # fmt: skip
        except jwt.ExpiredSignatureError:
            raise Unauthorized("The token has expired.") from None
        except jwt.ImmatureSignatureError:
            raise Unauthorized("The token is not valid yet (nbf).") from None
        except jwt.InvalidAudienceError:
            raise Unauthorized("The token is for another audience (aud).") from None
        except jwt.InvalidIssuerError:
            raise Unauthorized("The token is from another issuer (iss).") from None
        except jwt.InvalidSignatureError:
            raise Unauthorized("The token's signature does not verify.") from None
        except jwt.MissingRequiredClaimError as e:
            raise Unauthorized(f"The token lacks the {e.claim!r} claim.") from None
        except jwt.PyJWTError as e:
            raise Unauthorized(f"The token is not valid: {str(e)[:120]}.") from None
        for name in ("exp", "iat", "nbf"):  # PyJWT reads "1700000000" as a number too
            value = claims.get(name)
            if value is not None and (isinstance(value, bool) or
                                      not isinstance(value, int | float)):
                raise Unauthorized(f"The token's {name!r} claim must be a number (seconds "
                                   "since 1970).")  # fmt: skip
        longest = MAX_EMBED_TTL if issuer == EMBED_ISSUER else (
            self.config.max_lifetime_seconds if self.config is not None else 0.0
        )
        if longest:
            issued = claims.get("iat")
            start = issued if isinstance(issued, int | float) else time.time()
            if claims["exp"] - start > longest + leeway:
                raise Unauthorized(
                    f"The token lives {int(claims['exp'] - start)} s; this server accepts at "
                    f"most {int(longest)} s (auth.jwt.max_lifetime_seconds in tally.yml)."
                )
        return claims

    def mint_embed(
        self,
        subject: str,
        claims: Mapping[str, Any],
        metrics: list[str] | None,
        ttl_seconds: float,
        scopes: list[str],
        for_subject: str | None = None,
    ) -> tuple[str, dt.datetime]:
        """`subject` is the minter; the token's own subject adds whom it is for (`for_subject`,
        else a digest of the pinned claims), so that the tenants of one minting key never
        share a rate limit or each other's jobs."""
        if not 1 <= ttl_seconds <= MAX_EMBED_TTL:
            raise CallerError(f"ttl_seconds must be between 1 and {MAX_EMBED_TTL}.")
        if for_subject is not None and (
            not for_subject.strip() or not for_subject.isprintable() or len(for_subject) > 128
        ):
            raise CallerError("subject must be 1 to 128 printable characters.")
        pinned = json.dumps(dict(claims), sort_keys=True, default=str)
        whom = for_subject or "claims-" + hashlib.sha256(pinned.encode()).hexdigest()[:16]
        now = int(time.time())
        expires = now + int(ttl_seconds)
        payload = {
            "iss": EMBED_ISSUER,
            "aud": EMBED_AUDIENCE,
            "sub": f"{subject}/{whom}",
            "iat": now,
            "exp": expires,
            "tally": {"claims": dict(claims), "metrics": metrics, "scopes": scopes},
        }
        token = jwt.encode(payload, self._embed, algorithm="HS256", headers={"kid": EMBED_KID})
        return token, dt.datetime.fromtimestamp(expires, dt.UTC)


def scopes_of(claims: Mapping[str, Any]) -> frozenset[str]:
    """A token's scopes: its `scope` (space-separated) or `scopes` (a list) claim; a token
    without one gets meta and query."""
    raw = claims.get("scope", claims.get("scopes"))
    if raw is None:
        return frozenset({"meta", "query"})
    if isinstance(raw, str):
        return frozenset(raw.split())
    if isinstance(raw, list | tuple):
        return frozenset(str(s) for s in raw)
    return frozenset()
