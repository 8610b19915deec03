"""An example product app embedding tally's `overview` dashboard for one tenant.

Its backend holds tally's admin token (or a key with the `embed` scope) and, per page view,
mints a short-lived embed token pinning the signed-in customer's tenant; the browser gets only
that token. Standard library only:

    TALLY_URL=http://127.0.0.1:8080 TALLY_ADMIN_TOKEN=... python app.py --port 3000 --country DE

tally must allow this page's origin: TALLY_CORS_ORIGINS='["http://127.0.0.1:3000"]'.
"""

from __future__ import annotations

import argparse
import html
import json
import os
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def mint_embed_token(tally_url: str, admin_token: str, countries: list[str],
                     metrics: list[str] | None = None, ttl_seconds: int = 900) -> str:  # fmt: skip
    """POST /api/v1/embed-tokens: the claims pin the tenant (the `tenant` policy of tally.yml
    filters every query to its countries); `metrics` pins what it may query."""
    body = {"claims": {"roles": ["tenant"], "countries": countries}, "ttl_seconds": ttl_seconds}
    if metrics:
        body["metrics"] = metrics
    request = urllib.request.Request(
        f"{tally_url}/api/v1/embed-tokens", data=json.dumps(body).encode(), method="POST",
        headers={"authorization": f"Bearer {admin_token}", "content-type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)["token"]


def page_html(tally_url: str, token: str, dashboard: str = "overview") -> str:
    """The product page: one script tag and one element."""
    url, tok = html.escape(tally_url, quote=True), html.escape(token, quote=True)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Acme - your numbers</title>
<script type="module" src="{url}/dashboards/assets/tally-dashboard.js"></script>
<style>
  body {{ font-family: system-ui, sans-serif; margin: 0; background: #fafafa; }}
  header {{ background: #222; color: #fff; padding: 12px 20px; }}
  main {{ padding: 16px; --tally-accent: #7c3aed; }}  /* the product's own colour */
</style></head>
<body><header>Acme for merchants</header>
<main><tally-dashboard name="{html.escape(dashboard, quote=True)}" base-url="{url}"
   token="{tok}"></tally-dashboard></main>
</body></html>"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=3000)
    parser.add_argument("--country", default="DE", help="the signed-in tenant's country")
    args = parser.parse_args()
    tally_url = os.environ.get("TALLY_URL", "http://127.0.0.1:8080")
    admin = os.environ["TALLY_ADMIN_TOKEN"]

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            # A real app looks the tenant up from its own session; here it is fixed.
            # Pin what a tenant may query too: the cohort grid is over every customer and
            # cannot be filtered to one tenant, so its tile says so (forbidden) instead.
            token = mint_embed_token(tally_url, admin, [args.country],
                                     metrics=["revenue", "order_count", "gross_margin"])
            body = page_html(tally_url, token).encode()
            self.send_response(200)
            self.send_header("content-type", "text/html; charset=utf-8")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    print(f"product page on http://127.0.0.1:{args.port}/ (tenant {args.country})", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
