/**
 * @tally/client: the tally metrics API from TypeScript (browsers and Node 18+).
 *
 * Only `fetch` at run time; Arrow results load `apache-arrow` on first use (a dynamic import),
 * so a bundle that asks only for JSON never carries it.
 */

export type Grain = "hour" | "day" | "week" | "month" | "quarter" | "year" | string;

export type FilterOp =
  | "=" | "!=" | "in" | "not_in" | ">" | ">=" | "<" | "<=" | "between"
  | "is_null" | "is_not_null" | "contains";

/** A structured filter; a string is a MetricFlow where clause. */
export interface StructuredFilter {
  dimension: string;
  op?: FilterOp;
  value?: unknown;
  values?: unknown[];
  grain?: Grain;
}

export type Where = string | StructuredFilter;

export interface QueryRequest {
  metrics?: string[];
  /** group-by items, e.g. "metric_time__month" or "customer__country" */
  group_by?: string[];
  where?: Where[];
  /** "-revenue" sorts descending */
  order_by?: string[];
  limit?: number | null;
  saved_query?: string | null;
  /** first / last metric_time to include (ISO dates) */
  start?: string | null;
  end?: string | null;
}

export interface Column { name: string; type: string }

export interface QueryResult {
  columns: Column[];
  data: Record<string, unknown>[];
  row_count: number;
  sql?: string;
  cache?: { hit: boolean; age_seconds: number; stale?: boolean };
  timing_ms?: Record<string, number>;
}

export interface Metric {
  name: string;
  label: string | null;
  description: string | null;
  type: string;
  meta: Record<string, unknown>;
  [key: string]: unknown;
}

export interface Dimension {
  name: string;
  type: string;
  label?: string | null;
  description?: string | null;
  [key: string]: unknown;
}

export interface TileDefinition {
  name: string;
  type: "kpi" | "line" | "bar" | "area" | "table" | "heatmap";
  title: string;
  description?: string | null;
  metrics: string[];
  group_by: string[];
  grain?: string | null;
  where: Where[];
  order_by: string[];
  limit?: number | null;
  compare?: "previous_period" | null;
  date_range: boolean;
  width: number;
}

export interface DashboardDefinition {
  name: string;
  title: string;
  description?: string | null;
  controls: {
    start: string | null;
    end: string | null;
    grain: string;
    grains: string[];
    pickers: { dimension: string; label: string; applies_to: string[] }[];
  };
  tiles: TileDefinition[];
  metrics: Record<string, { label: string; format?: string | null; currency?: string | null }>;
}

export interface SavedQuery { name: string; [key: string]: unknown }

/** An error answered by the server: its stable code, message and did-you-mean suggestion. */
export class TallyError extends Error {
  readonly status: number;
  readonly code: string;
  readonly suggestion: string | null;
  readonly details: Record<string, unknown>;

  constructor(status: number, code: string, message: string, details: Record<string, unknown> = {}) {
    super(message);
    this.name = "TallyError";
    this.status = status;
    this.code = code;
    this.details = details;
    const s = details["suggestion"];
    this.suggestion = typeof s === "string" ? s : null;
  }
}

export interface ClientOptions {
  /** API key, JWT or embed token, sent as `Authorization: Bearer` */
  token?: string | null;
  /** retries of a 429 or 503 (honouring Retry-After), then the error */
  maxRetries?: number;
  /** first backoff in ms, doubled each retry, when the server gives no Retry-After */
  backoffMs?: number;
  /** the longest wait between retries, in ms */
  maxBackoffMs?: number;
  fetch?: typeof fetch;
}

export interface CallOptions { signal?: AbortSignal }

const ARROW = "application/vnd.apache.arrow.stream";

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const timer = setTimeout(() => { signal?.removeEventListener("abort", onAbort); resolve(); }, ms);
    const onAbort = () => { clearTimeout(timer); reject(signal!.reason); };
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/** Retry-After: seconds or an HTTP date; null when absent or unreadable. */
export function retryAfterMs(value: string | null): number | null {
  if (!value) return null;
  const seconds = Number(value);
  if (Number.isFinite(seconds)) return Math.max(0, seconds * 1000);
  const date = Date.parse(value);
  return Number.isNaN(date) ? null : Math.max(0, date - Date.now());
}

export class Client {
  readonly baseUrl: string;
  token: string | null;
  private readonly maxRetries: number;
  private readonly backoffMs: number;
  private readonly maxBackoffMs: number;
  private readonly fetchFn: typeof fetch;
  // ETag revalidation: the last body of each GET, answered from here on a 304.
  private readonly etags = new Map<string, { etag: string; body: unknown }>();

  constructor(baseUrl: string, options: ClientOptions = {}) {
    this.baseUrl = baseUrl.replace(/\/+$/, "");
    this.token = options.token ?? null;
    this.maxRetries = options.maxRetries ?? 3;
    this.backoffMs = options.backoffMs ?? 200;
    this.maxBackoffMs = options.maxBackoffMs ?? 10_000;
    this.fetchFn = options.fetch ?? globalThis.fetch.bind(globalThis);
  }

  /** Run a query; rows as JSON objects. */
  async query(request: QueryRequest, options: CallOptions = {}): Promise<QueryResult> {
    return (await this.call("POST", "/api/v1/query", request, options)) as QueryResult;
  }

  /** Run a query; the result as an Apache Arrow table (Arrow IPC on the wire). */
  async queryArrow(request: QueryRequest, options: CallOptions = {}) {
    const response = await this.send("POST", "/api/v1/query", request, ARROW, options);
    const bytes = new Uint8Array(await response.arrayBuffer());
    const arrow = await import("apache-arrow");
    return arrow.tableFromIPC(bytes);
  }

  /** Run a saved query, with extra filters, order and limit. */
  async querySaved(
    name: string,
    extra: Pick<QueryRequest, "where" | "order_by" | "limit" | "start" | "end"> = {},
    options: CallOptions = {},
  ): Promise<QueryResult> {
    const path = `/api/v1/saved-queries/${encodeURIComponent(name)}/query`;
    const response = await this.send("POST", path, extra, "application/json", options);
    return (await response.json()) as QueryResult;
  }

  async compile(request: QueryRequest, options: CallOptions = {}): Promise<string> {
    const response = await this.send("POST", "/api/v1/compile", request, "application/json", options);
    return ((await response.json()) as { sql: string }).sql;
  }

  async metrics(options: CallOptions = {}): Promise<Metric[]> {
    return ((await this.get("/api/v1/metrics", options)) as { metrics: Metric[] }).metrics;
  }

  async metric(name: string, options: CallOptions = {}): Promise<Metric & { dimensions: Dimension[] }> {
    return (await this.get(`/api/v1/metrics/${encodeURIComponent(name)}`, options)) as
      Metric & { dimensions: Dimension[] };
  }

  async dimensions(metrics: string[] = [], options: CallOptions = {}): Promise<Dimension[]> {
    const q = metrics.length ? `?metrics=${encodeURIComponent(metrics.join(","))}` : "";
    return ((await this.get(`/api/v1/dimensions${q}`, options)) as { dimensions: Dimension[] }).dimensions;
  }

  async savedQueries(options: CallOptions = {}): Promise<SavedQuery[]> {
    return ((await this.get("/api/v1/saved-queries", options)) as { saved_queries: SavedQuery[] })
      .saved_queries;
  }

  /** Distinct values of a dimension (for pickers). */
  async dimensionValues(
    dimension: string,
    params: { metrics?: string[]; limit?: number; start?: string; end?: string } = {},
    options: CallOptions = {},
  ): Promise<unknown[]> {
    const q = new URLSearchParams({ dimension });
    if (params.metrics?.length) q.set("metrics", params.metrics.join(","));
    if (params.limit != null) q.set("limit", String(params.limit));
    if (params.start) q.set("start", params.start);
    if (params.end) q.set("end", params.end);
    const body = (await this.get(`/api/v1/dimension-values?${q}`, options)) as { values: unknown[] };
    return body.values;
  }

  /** Dashboards as code: their names and titles. */
  async dashboards(options: CallOptions = {}): Promise<{ name: string; title: string }[]> {
    return ((await this.get("/api/v1/dashboards", options)) as { dashboards: { name: string; title: string }[] })
      .dashboards;
  }

  /** One dashboard: its controls, tiles, and the label and format of each metric. */
  async dashboard(name: string, options: CallOptions = {}): Promise<DashboardDefinition> {
    return (await this.get(`/api/v1/dashboards/${encodeURIComponent(name)}`, options)) as DashboardDefinition;
  }

  private get(path: string, options: CallOptions): Promise<unknown> {
    return this.call("GET", path, undefined, options);
  }

  /** A JSON call, revalidated with If-None-Match when an earlier answer carried an ETag. */
  private async call(method: string, path: string, body: unknown, options: CallOptions): Promise<unknown> {
    const key = `${method} ${path} ${body === undefined ? "" : JSON.stringify(body)}`;
    const cached = this.etags.get(key);
    const response = await this.send(method, path, body, "application/json", options,
      cached ? { "if-none-match": cached.etag } : {});
    if (response.status === 304 && cached) return cached.body;
    const value = await response.json();
    const etag = response.headers.get("etag");
    if (etag) {
      // bounded: the oldest answer goes first (a Map keeps insertion order)
      this.etags.delete(key);
      this.etags.set(key, { etag, body: value });
      if (this.etags.size > 256) this.etags.delete(this.etags.keys().next().value!);
    }
    return value;
  }

  private async send(
    method: string,
    path: string,
    body: unknown,
    accept: string,
    options: CallOptions,
    extraHeaders: Record<string, string> = {},
  ): Promise<Response> {
    const headers: Record<string, string> = { accept, ...extraHeaders };
    if (body !== undefined) headers["content-type"] = "application/json";
    if (this.token) headers["authorization"] = `Bearer ${this.token}`;
    for (let attempt = 0; ; attempt++) {
      const response = await this.fetchFn(this.baseUrl + path, {
        method, headers, body: body === undefined ? undefined : JSON.stringify(body),
        signal: options.signal,
      });
      if (response.ok || response.status === 304) return response;
      const retriable = response.status === 429 || response.status === 503;
      if (retriable && attempt < this.maxRetries) {
        const wait = retryAfterMs(response.headers.get("retry-after"))
          ?? this.backoffMs * 2 ** attempt;
        await response.body?.cancel();
        await sleep(Math.min(wait, this.maxBackoffMs), options.signal);
        continue;
      }
      throw await toError(response);
    }
  }
}

async function toError(response: Response): Promise<TallyError> {
  const text = await response.text();
  try {
    const error = (JSON.parse(text) as { error?: { code?: string; message?: string; details?: Record<string, unknown> } }).error;
    if (error?.code) {
      return new TallyError(response.status, error.code, error.message ?? error.code, error.details ?? {});
    }
  } catch {
    // not the error shape: a proxy's page, say
  }
  return new TallyError(response.status, "http_error", `HTTP ${response.status}: ${text.slice(0, 200)}`);
}
