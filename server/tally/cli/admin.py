"""`tally keys create|list|revoke` and `tally policy check`: the operator's side of access
control. Keys are printed once, at creation; the store keeps only their hashes."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict

from tally.cli.common import project_flags, service_of
from tally.errors import CallerError


def register(sub: argparse._SubParsersAction) -> None:
    keys = sub.add_parser("keys", help="create, list or revoke API keys")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True, metavar="ACTION")
    create = keys_sub.add_parser("create", help="create a key (printed once)")
    project_flags(create)
    create.add_argument("name", help="what the key is for, e.g. bi-tool or acme-backend")
    create.add_argument(
        "--scopes", default="meta,query", help="comma-separated: meta, query, sql, admin, embed"
    )
    create.add_argument(
        "--claims", default="{}", help="fixed claims as JSON, e.g. '{\"roles\": [\"tenant\"]}'"
    )
    create.set_defaults(handler=_create)
    listing = keys_sub.add_parser("list", help="list keys (never their secrets)")
    project_flags(listing)
    listing.add_argument("--format", choices=("table", "json"), default="table")
    listing.set_defaults(handler=_list)
    revoke = keys_sub.add_parser("revoke", help="revoke a key by id or name")
    project_flags(revoke)
    revoke.add_argument("key", help="the key's id or name")
    revoke.set_defaults(handler=_revoke)

    policy = sub.add_parser("policy", help="what a caller may see")
    policy_sub = policy.add_subparsers(dest="policy_command", required=True, metavar="ACTION")
    check = policy_sub.add_parser(
        "check", help="print the metrics, dimensions and row filters of a caller with claims"
    )
    project_flags(check)
    check.add_argument("--claims", required=True, help="the token's claims as JSON")
    check.add_argument("--format", choices=("text", "json"), default="text")
    check.set_defaults(handler=_check)


def _json_object(text: str, what: str) -> dict:
    try:
        value = json.loads(text)
    except ValueError as e:
        raise CallerError(f"{what} is not valid JSON: {e}.") from None
    if not isinstance(value, dict):
        raise CallerError(f"{what} must be a JSON object, e.g. '{{\"roles\": [\"tenant\"]}}'.")
    return value


def _create(args: argparse.Namespace) -> int:
    store = service_of(args).security.keys
    scopes = [s.strip() for s in args.scopes.split(",") if s.strip()]
    key, token = store.create(args.name, scopes, _json_object(args.claims, "--claims"))
    print(f"created key {key.id} ({key.name}), scopes {', '.join(key.scopes)}")
    print(token)
    print("(shown once: store it now; tally keeps only its hash)")
    return 0


def _list(args: argparse.Namespace) -> int:
    keys = [k.public() for k in service_of(args).security.keys.keys().values()]
    if args.format == "json":
        print(json.dumps(keys, indent=2))
        return 0
    for k in keys:
        state = f"revoked {k['revoked_at']}" if k["revoked_at"] else "active"
        print(f"{k['id']}  {k['name']:<24} {','.join(k['scopes']):<24} {state}")
    if not keys:
        print("no keys (`tally keys create NAME` makes one)")
    return 0


def _revoke(args: argparse.Namespace) -> int:
    key = service_of(args).security.keys.revoke(args.key)
    print(f"revoked key {key.id} ({key.name}) at {key.revoked_at}")
    return 0


def _check(args: argparse.Namespace) -> int:
    service = service_of(args)
    caller = service.security.for_claims(_json_object(args.claims, "--claims"))
    metrics = [m.name for m in service.list_metrics(caller)]
    dims = sorted({d.name for m in metrics for d in service.list_dimensions((m,), caller)})
    grant = caller.grant
    filters = [f if isinstance(f, str) else asdict(f) for f in (grant.row_filters if grant else ())]
    report = {
        "roles": list(grant.roles) if grant else [],
        "scopes": sorted(caller.scopes),
        "policies": list(grant.policies) if grant else [],
        "row_filters": filters,
        "metrics": metrics,
        "dimensions": dims,
    }
    if args.format == "json":
        print(json.dumps(report, indent=2))
        return 0
    print(f"roles: {', '.join(report['roles']) or '(none)'}; scopes: {', '.join(report['scopes'])}")
    print(f"policies applied: {', '.join(report['policies']) or '(none)'}")
    print("row filters (AND-ed into every query):")
    for f in filters:
        print(f"  {f}")
    if not filters:
        print("  (none: every row)")
    print(f"metrics ({len(metrics)}): {', '.join(metrics)}")
    print(f"dimensions ({len(dims)}): {', '.join(dims)}")
    return 0
