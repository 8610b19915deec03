// @tally/client against a real `tally serve`, run by tests/clients/test_js_client.py, which
// starts the server and passes TALLY_URL, TALLY_TENANT_TOKEN (an embed token for FR) and
// TALLY_EXPECTED (a JSON file of rows computed by hand-written SQL over raw.*).
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { Client, TallyError, retryAfterMs } from "../dist/index.js";

const URL_ = process.env.TALLY_URL;
const expected = JSON.parse(readFileSync(process.env.TALLY_EXPECTED, "utf8"));
const client = new Client(URL_);

function byKey(rows, keys, metric) {
  return new Map(rows.map((r) => [keys.map((k) => String(r[k])).join("|"), Number(r[metric])]));
}

function assertRowsClose(served, want, keys, metric) {
  const a = byKey(served, keys, metric), b = byKey(want, keys, metric);
  assert.ok(b.size > 0, "vacuous: no expected rows");
  assert.deepEqual([...a.keys()].sort(), [...b.keys()].sort());
  for (const [k, v] of b) assert.ok(Math.abs(a.get(k) - v) <= 1e-9 * Math.max(1, Math.abs(v)), `${k}: ${a.get(k)} != ${v}`);
}

test("JSON rows equal the hand-written SQL, by month and by country with a filter", async () => {
  const monthly = await client.query({ metrics: ["revenue"], group_by: ["metric_time__month"], start: "2025-01-01", end: "2025-12-31" });
  assertRowsClose(monthly.data, expected.revenue_by_month, ["metric_time__month"], "revenue");
  const filtered = await client.query({ metrics: ["order_count"], group_by: ["customer__country"],
    where: [{ dimension: "customer__country", op: "in", values: ["DE", "FR"] }] });
  assertRowsClose(filtered.data, expected.orders_de_fr, ["customer__country"], "order_count");
});

test("Arrow results carry the same numbers", async () => {
  const table = await client.queryArrow({ metrics: ["order_count"], group_by: ["customer__country"],
    where: [{ dimension: "customer__country", op: "in", values: ["DE", "FR"] }] });
  assert.equal(table.numRows, 2);
  const rows = table.toArray().map((r) => ({ customer__country: r.customer__country, order_count: Number(r.order_count) }));
  assertRowsClose(rows, expected.orders_de_fr, ["customer__country"], "order_count");
});

test("catalog, dimension values, saved queries and dashboards", async () => {
  const metrics = await client.metrics();
  const revenue = metrics.find((m) => m.name === "revenue");
  assert.equal(revenue.meta.format, "currency");
  const dims = await client.dimensions(["revenue"]);
  assert.ok(dims.some((d) => d.name === "customer__country"));
  const values = await client.dimensionValues("customer__country");
  assert.ok(values.includes("DE"));
  assert.ok((await client.savedQueries()).length > 0);
  const overview = await client.dashboard("overview");
  assert.ok(overview.tiles.length >= 6 && overview.metrics.revenue.format === "currency");
});

test("errors carry the server's code, message and suggestion", async () => {
  await assert.rejects(client.query({ metrics: ["revenu"] }), (e) => {
    assert.ok(e instanceof TallyError);
    assert.equal(e.status, 400);
    assert.equal(e.code, "unknown_metric");
    assert.equal(e.suggestion, "revenue");
    return true;
  });
  await assert.rejects(client.dashboard("overveiw"), (e) => e.code === "unknown_dashboard" && e.status === 404);
});

test("an abort signal stops the call", async () => {
  const controller = new AbortController();
  controller.abort();
  await assert.rejects(client.query({ metrics: ["revenue"] }, { signal: controller.signal }), (e) => e.name === "AbortError");
});

test("a tenant's embed token sees only its country", async () => {
  const tenant = new Client(URL_, { token: process.env.TALLY_TENANT_TOKEN });
  const result = await tenant.query({ metrics: ["order_count"], group_by: ["customer__country"] });
  assert.deepEqual(result.data.map((r) => r.customer__country), ["FR"]);
  assertRowsClose(result.data, expected.orders_fr, ["customer__country"], "order_count");
  await assert.rejects(tenant.query({ metrics: ["gross_margin"] }), (e) => e.code === "forbidden" && e.status === 403);
});

test("ETag revalidation: the second read is a 304 answered from memory", async () => {
  const statuses = [];
  const counting = new Client(URL_, { fetch: async (...args) => { const r = await fetch(...args); statuses.push(r.status); return r; } });
  const request = { metrics: ["revenue"], group_by: ["customer__country"] };
  const first = await counting.query(request);
  const second = await counting.query(request);
  assert.deepEqual(statuses, [200, 304]);
  assert.deepEqual(second, first);
});

// Faults that cannot be caused on the shared server on demand: a fetch that answers 503 / 429
// first, then passes through to the real server.
test("503 and 429 are retried, honouring Retry-After", async () => {
  const calls = [];
  let faults = [
    new Response(JSON.stringify({ error: { code: "warehouse_unavailable", message: "down" } }), { status: 503 }),
    new Response(JSON.stringify({ error: { code: "rate_limited", message: "slow down" } }), { status: 429, headers: { "retry-after": "0.3" } }),
  ];
  const flaky = new Client(URL_, { backoffMs: 10, fetch: async (...args) => {
    calls.push(Date.now());
    return faults.length ? faults.shift() : fetch(...args);
  } });
  const result = await flaky.query({ metrics: ["order_count"] });
  assert.equal(result.row_count, 1);
  assert.equal(calls.length, 3);
  assert.ok(calls[2] - calls[1] >= 280, `waited ${calls[2] - calls[1]} ms, Retry-After said 300`);

  const down = new Client(URL_, { maxRetries: 2, backoffMs: 1, fetch: async () =>
    new Response(JSON.stringify({ error: { code: "warehouse_unavailable", message: "down" } }), { status: 503 }) });
  await assert.rejects(down.query({ metrics: ["order_count"] }), (e) => e.code === "warehouse_unavailable" && e.status === 503);
  assert.equal(retryAfterMs("2"), 2000);
  assert.equal(retryAfterMs(null), null);
});
