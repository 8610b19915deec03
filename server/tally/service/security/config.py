"""The security part of the project file `tally.yml` (beside dbt_project.yml), validated at start
with file:line errors. Secrets never live in it: the JWT secret comes from TALLY_JWT_SECRET,
API keys are stored hashed by `tally keys` (outside the repository), key files are paths.

    auth:
      api_keys: true                 # keys made by `tally keys create` (default: true)
      keys_file: .tally/keys.json    # where they are stored, hashed (default shown)
      jwt:                           # TALLY_JWT_SECRET alone turns on HS256
        algorithms: [RS256]
        public_key_file: keys/jwt.pem   # or jwks_file: keys/jwks.json
        issuer: https://auth.example.com
        audience: tally
        leeway_seconds: 30
        max_lifetime_seconds: 86400  # exp is required, at most this long after iat (0: any)
      roles_claim: roles             # the claim listing a caller's roles (default: roles); a
                                     # dotted path reads a nested claim: realm_access.roles
    policies:
      - role: tenant                 # applies to callers with this role ("*": everyone)
        row_filters:
          - {dimension: customer__country, op: in, values: "{{ claims.countries }}"}
          - "{{ Dimension('customer__segment') }} != 'internal'"
        metrics: {deny: [gross_margin]}      # or allow: [...]
        dimensions: {deny: [customer__email]}
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tally.project.tally_file import YamlReader, read_tally_file

ALGORITHMS = ("HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "ES256", "ES384", "ES512")


@dataclass(frozen=True)
class JwtConfig:
    algorithms: tuple[str, ...] = ("HS256",)
    public_key_file: Path | None = None
    jwks_file: Path | None = None
    issuer: str | None = None
    audience: str | None = None
    leeway_seconds: float = 30.0
    # Every token must expire (`exp`), at most this long after it was issued (`iat`, else
    # now): a leaked token is useful for a bounded time. 0: no maximum.
    max_lifetime_seconds: float = 86400.0


@dataclass(frozen=True)
class MemberRule:
    allow: tuple[str, ...] | None = None  # None: every one not denied
    deny: tuple[str, ...] = ()


@dataclass(frozen=True)
class Policy:
    role: str
    row_filters: tuple[Any, ...] = ()  # template strings or structured dicts
    metrics: MemberRule = field(default_factory=MemberRule)
    dimensions: MemberRule = field(default_factory=MemberRule)
    where: str = ""  # file:line, for messages


@dataclass(frozen=True)
class SecurityConfig:
    path: Path | None = None
    api_keys: bool = True
    keys_file: Path | None = None
    jwt: JwtConfig | None = None
    roles_claim: str = "roles"
    policies: tuple[Policy, ...] = ()


def load_security(project_dir: Path) -> SecurityConfig:
    keys_default = project_dir / ".tally" / "keys.json"
    file = read_tally_file(project_dir)
    if not file.exists:
        return SecurityConfig(keys_file=keys_default)
    reader = file.reader
    auth = reader.mapping(file.section("auth"), "auth")
    reader.known(auth, {"api_keys", "keys_file", "jwt", "roles_claim"}, "auth")
    jwt = None
    if "jwt" in auth:
        jwt = _jwt(reader, project_dir, auth["jwt"])
    keys_file = reader.path(auth.get("keys_file"), project_dir, "auth.keys_file") or keys_default
    policies = tuple(
        _policy(reader, node) for node in reader.sequence(file.section("policies"), "policies")
    )
    return SecurityConfig(
        path=file.path,
        api_keys=reader.boolean(auth.get("api_keys"), "auth.api_keys", default=True),
        keys_file=keys_file,
        jwt=jwt,
        roles_claim=reader.string(auth.get("roles_claim"), "auth.roles_claim") or "roles",
        policies=policies,
    )


def _jwt(reader: YamlReader, project_dir: Path, node: Any) -> JwtConfig:
    jwt = reader.mapping(node, "auth.jwt")
    reader.known(jwt, {"algorithms", "public_key_file", "jwks_file", "issuer", "audience",
                       "leeway_seconds", "max_lifetime_seconds"}, "auth.jwt")  # fmt: skip
    algorithms = tuple(reader.strings(jwt.get("algorithms"), "auth.jwt.algorithms") or ("HS256",))
    for algorithm in algorithms:
        if algorithm not in ALGORITHMS or algorithm == "none":
            raise reader.error(jwt.get("algorithms"), f"auth.jwt.algorithms: {algorithm!r} is not "
                               f"one of {', '.join(ALGORITHMS)}")  # fmt: skip
    config = JwtConfig(
        algorithms=algorithms,
        public_key_file=reader.path(
            jwt.get("public_key_file"), project_dir, "auth.jwt.public_key_file"
        ),
        jwks_file=reader.path(jwt.get("jwks_file"), project_dir, "auth.jwt.jwks_file"),
        issuer=reader.string(jwt.get("issuer"), "auth.jwt.issuer"),
        audience=reader.string(jwt.get("audience"), "auth.jwt.audience"),
        leeway_seconds=reader.number(jwt.get("leeway_seconds"), "auth.jwt.leeway_seconds", 30.0),
        max_lifetime_seconds=reader.number(
            jwt.get("max_lifetime_seconds"), "auth.jwt.max_lifetime_seconds", 86400.0
        ),
    )
    asymmetric = [a for a in algorithms if not a.startswith("HS")]
    if asymmetric and not (config.public_key_file or config.jwks_file):
        raise reader.error(node, f"auth.jwt: {asymmetric[0]} needs public_key_file or jwks_file")
    for key_path in (config.public_key_file, config.jwks_file):
        if key_path is not None and not key_path.is_file():
            raise reader.error(node, f"auth.jwt: {key_path} does not exist")
    return config


def _policy(reader: YamlReader, node: Any) -> Policy:
    policy = reader.mapping(node, "policies[]")
    reader.known(policy, {"role", "row_filters", "metrics", "dimensions"}, "policy")
    role = reader.string(policy.get("role"), "policy.role")
    if not role:
        raise reader.error(node, 'a policy needs a `role:` ("*" for every caller)')
    filters = []
    for item in reader.sequence(policy.get("row_filters"), "policy.row_filters"):
        value = reader.plain(item)
        if not isinstance(value, str | dict):
            raise reader.error(item, "a row filter is a filter string or a {dimension, op, "
                               "values} mapping")  # fmt: skip
        filters.append(value)
    return Policy(
        role=role,
        row_filters=tuple(filters),
        metrics=_members(reader, policy.get("metrics"), "policy.metrics"),
        dimensions=_members(reader, policy.get("dimensions"), "policy.dimensions"),
        where=reader.where(node),
    )


def _members(reader: YamlReader, node: Any, what: str) -> MemberRule:
    if node is None:
        return MemberRule()
    rule = reader.mapping(node, what)
    reader.known(rule, {"allow", "deny"}, what)
    allow = reader.strings(rule.get("allow"), f"{what}.allow")
    return MemberRule(
        allow=tuple(n.lower() for n in allow) if allow is not None else None,
        deny=tuple(n.lower() for n in reader.strings(rule.get("deny"), f"{what}.deny") or ()),
    )
