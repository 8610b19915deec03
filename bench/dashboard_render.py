"""Time to every tile of a dashboard rendered, in headless Chromium against a real `tally serve`
on loopback: warm (every tile query a cache hit) and cold (the cache invalidated before each
load), interleaved so both see the same load; plus the page's JavaScript size from the build.

    make warehouse && make dashboard-build && make browser
    .venv/bin/python bench/dashboard_render.py [--dashboard overview] [--repeat 10]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys

import httpx
from serving import ROOT, tally_serve

ADMIN = "bench-admin-token"
# performance.now() is measured from the navigation's start: the page, the script, the
# dashboard's definition, every tile's queries and its drawing.
SETTLED = """() => {
  const tiles = [...document.querySelectorAll('[data-tile]')];
  const settled = t => ['ready', 'empty', 'error'].includes(t.dataset.state);
  return tiles.length > 0 && tiles.every(settled) ? performance.now() : false;
}"""


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dashboard", default="overview")
    parser.add_argument("--repeat", type=int, default=10)
    args = parser.parse_args()
    if not (ROOT / "dbt_project" / "warehouse.duckdb").exists():
        print("run `make warehouse` first", file=sys.stderr)
        return 2
    size = json.loads((ROOT / "clients/dashboard/dist/bundle-size.json").read_text())
    from playwright.sync_api import sync_playwright

    with tally_serve({"TALLY_ADMIN_TOKEN": ADMIN}) as base, \
            httpx.Client(base_url=base, timeout=30) as client, sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium",
                                    args=["--no-sandbox"])  # fmt: skip

        def load() -> tuple[float, int]:
            context = browser.new_context(viewport={"width": 1280, "height": 900})
            page = context.new_page()
            page.goto(f"{base}/dashboards/{args.dashboard}")
            ms = page.wait_for_function(SETTLED, timeout=120_000).json_value()
            tiles = page.evaluate("() => document.querySelectorAll('[data-tile]').length")
            context.close()
            return ms, tiles

        load()  # the engine, the compiled SQL, the browser's own start
        warm, cold = [], []
        for i in range(args.repeat):
            ms, tiles = load()
            warm.append(ms)
            client.post("/api/v1/cache/invalidate",
                        headers={"authorization": f"Bearer {ADMIN}"})  # fmt: skip
            ms, _ = load()
            cold.append(ms)
            print(f"  {i + 1}/{args.repeat}: warm {warm[-1]:.0f} ms, "
                  f"cold {cold[-1]:.0f} ms", file=sys.stderr, flush=True)  # fmt: skip
        browser.close()
    w, c = statistics.median(warm), statistics.median(cold)
    print(f"dashboard '{args.dashboard}': {tiles} tiles, median of {args.repeat} loads each")
    print(f"  all tiles rendered, warm server (cache hits): {w:7.0f} ms")
    print(f"  all tiles rendered, cold cache (queries run): {c:7.0f} ms   cold/warm {c / w:.2f}x")
    print(f"  page JavaScript: {size['gzip_bytes'] / 1024:.1f} KB gzipped "
          f"({size['raw_bytes'] / 1024:.1f} KB raw), "
          f"budget {size['budget_gzip_bytes'] / 1024:.0f} KB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
