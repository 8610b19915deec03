// Single tiles: <tally-kpi>, <tally-chart>, <tally-table>. Configured by attributes (metrics,
// group-by, where as JSON, order-by, limit, start, end, type, title, base-url, token) or, inside
// <tally-dashboard>, by the dashboard (the `request` property). Each shows loading, empty and
// error states, and says what it shows in data attributes: data-state, data-rows (the rows as
// the API answered them), and for a KPI data-value / data-previous.
import * as Plot from "@observablehq/plot";
import { Client, TallyError, type QueryRequest, type QueryResult, type Where } from "@tally/client";
import { formatCell, formatValue, previousPeriod, toNumber, type MetricFormat } from "./format.js";
import { installStyles } from "./styles.js";

const SCRIPT_ORIGIN = (() => {
  try { return new URL(import.meta.url).origin; } catch { return ""; }
})();

const clients = new Map<string, Client>();

export function clientFor(baseUrl: string, token: string | null): Client {
  const key = `${baseUrl}\u0000${token ?? ""}`;
  let c = clients.get(key);
  if (!c) { c = new Client(baseUrl, { token }); clients.set(key, c); }
  return c;
}

function list(value: string | null): string[] {
  return (value ?? "").split(",").map((s) => s.trim()).filter(Boolean);
}

type State = "loading" | "ready" | "empty" | "error";

export abstract class TallyTile extends HTMLElement {
  static observedAttributes = ["metrics", "group-by", "where", "order-by", "limit", "start", "end",
    "token", "base-url", "title", "type", "compare"];

  /** Set by <tally-dashboard>; otherwise built from the attributes. */
  request: QueryRequest | null = null;
  formats: Record<string, MetricFormat> = {};
  protected rows: Record<string, unknown>[] = [];
  protected columns: string[] = [];
  private generation = 0;
  private controller: AbortController | null = null;
  private resize: ResizeObserver | null = null;
  private lastWidth = 0;

  connectedCallback(): void {
    installStyles();
    this.classList.add("tally-tile");
    if (!this.hasAttribute("tabindex")) this.tabIndex = 0;
    this.setAttribute("role", "figure");
    if (typeof ResizeObserver !== "undefined" && !this.resize) {
      this.resize = new ResizeObserver(() => {
        const w = Math.round(this.clientWidth);
        if (w !== this.lastWidth && this.dataset.state === "ready") { this.lastWidth = w; this.draw(); }
      });
      this.resize.observe(this);
    }
    if (!this.closest("tally-dashboard") || this.request) void this.load();
  }

  disconnectedCallback(): void {
    this.controller?.abort();
    this.resize?.disconnect();
    this.resize = null;
  }

  attributeChangedCallback(_name: string, old: string | null, value: string | null): void {
    if (old !== value && this.isConnected && !this.closest("tally-dashboard")) void this.load();
  }

  get heading(): string {
    return this.getAttribute("title") ?? this.metricNames().map((m) => this.formats[m]?.label ?? m).join(", ");
  }

  protected client(): Client {
    const dash = this.closest("tally-dashboard");
    const base = this.getAttribute("base-url") ?? dash?.getAttribute("base-url") ?? SCRIPT_ORIGIN;
    const token = this.getAttribute("token") ?? dash?.getAttribute("token") ?? null;
    return clientFor(base, token);
  }

  protected query(): QueryRequest {
    if (this.request) return this.request;
    const whereAttr = this.getAttribute("where");
    const limit = this.getAttribute("limit");
    return {
      metrics: list(this.getAttribute("metrics")),
      group_by: list(this.getAttribute("group-by")),
      where: whereAttr ? (JSON.parse(whereAttr) as Where[]) : [],
      order_by: list(this.getAttribute("order-by")),
      limit: limit ? Number(limit) : null,
      start: this.getAttribute("start"),
      end: this.getAttribute("end"),
    };
  }

  protected metricNames(): string[] {
    return this.query().metrics ?? [];
  }

  /** Run the tile's query (again): called on connect, on attribute changes, by the dashboard. */
  async load(): Promise<void> {
    const generation = ++this.generation;
    this.controller?.abort();
    const controller = new AbortController();
    this.controller = controller;
    this.setState("loading");
    this.body(`<div class="tally-status" aria-busy="true">Loading…</div>`);
    try {
      if (Object.keys(this.formats).length === 0 && !this.closest("tally-dashboard")) {
        await this.loadFormats(controller.signal);
      }
      const result = await this.fetchData(this.query(), controller.signal);
      if (generation !== this.generation) return;
      this.rows = result.data;
      this.columns = result.columns.map((c) => c.name);
      this.dataset.rows = JSON.stringify(result.data);
      if (result.data.length === 0) {
        this.setState("empty");
        this.body(`<div class="tally-status">No data for this selection.</div>`);
        return;
      }
      this.lastWidth = Math.round(this.clientWidth);
      this.draw();
      this.setState("ready");
    } catch (e) {
      if (generation !== this.generation || controller.signal.aborted) return;
      this.showError(e);
    }
  }

  private async loadFormats(signal: AbortSignal): Promise<void> {
    try {
      const metrics = await this.client().metrics({ signal });
      for (const m of metrics) {
        this.formats[m.name] = { label: m.label ?? m.name, format: m.meta?.["format"] as string,
          currency: m.meta?.["currency"] as string };
      }
    } catch {
      // formats are a nicety: the query itself reports what is wrong
    }
  }

  protected fetchData(request: QueryRequest, signal: AbortSignal): Promise<QueryResult> {
    return this.client().query(request, { signal });
  }

  protected setState(state: State): void {
    this.dataset.state = state;
    this.setAttribute("aria-busy", String(state === "loading"));
  }

  protected body(inner: string): void {
    this.innerHTML = `<h2>${escapeHtml(this.heading)}</h2>${inner}`;
    this.setAttribute("aria-label", this.heading);
  }

  showError(e: unknown): void {
    const code = e instanceof TallyError ? e.code : "network_error";
    const message = e instanceof Error ? e.message : String(e);
    this.dataset.errorCode = code;
    this.setState("error");
    this.body(`<div class="tally-status tally-error" role="alert">${escapeHtml(message)} <code>${escapeHtml(code)}</code></div>`);
  }

  /** Render this.rows (called again when the width changes). */
  protected abstract draw(): void;

  protected dataTable(): string {
    const metrics = new Set(this.metricNames());
    const head = this.columns.map((c) => `<th scope="col"${metrics.has(c) ? ' class="num"' : ""}>${escapeHtml(this.formats[c]?.label ?? c)}</th>`).join("");
    const body = this.rows.map((r) => `<tr>${this.columns.map((c) => metrics.has(c)
      ? `<td class="num" data-column="${escapeHtml(c)}" data-value="${escapeHtml(String(r[c] ?? ""))}">${escapeHtml(formatValue(r[c], this.formats[c]))}</td>`
      : `<td data-column="${escapeHtml(c)}">${escapeHtml(formatCell(r[c]))}</td>`).join("")}</tr>`).join("");
    return `<div class="tally-table-wrap"><table class="tally-data"><thead><tr>${head}</tr></thead><tbody>${body}</tbody></table></div>`;
  }
}

export class TallyTable extends TallyTile {
  protected draw(): void {
    this.body(this.dataTable());
  }
}

export class TallyKpi extends TallyTile {
  private previous: QueryResult | null = null;

  protected async fetchData(request: QueryRequest, signal: AbortSignal): Promise<QueryResult> {
    const compare = this.getAttribute("compare") ?? (this.dataset.compare || null);
    this.previous = null;
    if (compare === "previous_period" && request.start && request.end) {
      const [start, end] = previousPeriod(request.start.slice(0, 10), request.end.slice(0, 10));
      // both at once; Promise.all so an aborted pair leaves no unhandled rejection
      const [current, previous] = await Promise.all([
        this.client().query(request, { signal }),
        this.client().query({ ...request, start, end }, { signal }),
      ]);
      this.previous = previous;
      return current;
    }
    return this.client().query(request, { signal });
  }

  protected draw(): void {
    const metric = this.metricNames()[0] ?? this.columns[0] ?? "";
    const value = this.rows[0]?.[metric];
    const fmt = this.formats[metric];
    this.dataset.value = String(value ?? "");
    let delta = "";
    if (this.previous) {
      const before = this.previous.data[0]?.[metric];
      this.dataset.previous = String(before ?? "");
      const a = toNumber(value), b = toNumber(before);
      if (a !== null && b !== null && b !== 0) {
        const change = (a - b) / Math.abs(b);
        const dir = change >= 0 ? "up" : "down";
        const pct = new Intl.NumberFormat(undefined, { style: "percent", maximumFractionDigits: 1, signDisplay: "always" }).format(change);
        delta = `<div class="tally-kpi-delta"><span class="tally-${dir}" aria-label="${dir} ${pct}">${dir === "up" ? "▲" : "▼"} ${pct}</span> vs previous period (${escapeHtml(formatValue(before, fmt))})</div>`;
      }
    }
    this.body(`<div class="tally-kpi-value" data-metric="${escapeHtml(metric)}">${escapeHtml(formatValue(value, fmt))}</div>${delta}`);
  }
}

export class TallyChart extends TallyTile {
  protected draw(): void {
    const type = this.getAttribute("type") ?? "line";
    const metrics = this.metricNames();
    const groups = this.columns.filter((c) => !metrics.includes(c));
    const y = metrics[0] ?? "";
    const fmt = this.formats[y];
    const width = Math.max(260, this.clientWidth - 24);
    const tick = (d: unknown) => formatValue(d, fmt, true);
    const isTime = (c: string | undefined) => !!c && /(^metric_time|__(day|week|month|quarter|year|hour))$|_date$|_month$/.test(c);
    const data = this.rows.map((r) => {
      const row: Record<string, unknown> = { ...r };
      for (const m of metrics) row[m] = toNumber(r[m]);
      for (const g of groups) if (isTime(g) && typeof r[g] === "string") row[g] = new Date(r[g] as string);
      return row;
    });
    let svg: Element;
    const base = { width, marginLeft: 60, style: { fontSize: "11px", background: "transparent" } };
    if (type === "heatmap" && groups.length >= 2) {
      const [rowKey, colKey] = groups;
      for (const d of data) if (d[rowKey] instanceof Date) d[rowKey] = (d[rowKey] as Date).toISOString().slice(0, 7);
      svg = Plot.plot({ ...base, marginLeft: 70, padding: 0.05, height: Math.max(160, 16 * new Set(data.map((d) => d[rowKey])).size + 40),
        x: { label: pretty(colKey), type: "band" }, y: { label: pretty(rowKey), type: "band" },
        color: { scheme: "blues", legend: true, tickFormat: tick, label: this.formats[y]?.label ?? y },
        marks: [Plot.cell(data, { x: colKey, y: rowKey, fill: y, title: (d: Record<string, unknown>) => `${d[rowKey]} · ${d[colKey]}: ${formatValue(d[y], fmt)}` })] });
    } else if (type === "bar" && groups.length >= 1 && !isTime(groups[0])) {
      const cat = groups[0];
      svg = Plot.plot({ ...base, marginLeft: 110, height: Math.max(120, 24 * data.length + 40),
        x: { grid: true, tickFormat: tick, label: this.formats[y]?.label ?? y },
        y: { label: null, domain: data.map((d) => String(d[cat])) },
        marks: [Plot.barX(data, { y: (d: Record<string, unknown>) => String(d[cat]), x: y, fill: "var(--tally-accent, #3563e9)", title: (d: Record<string, unknown>) => `${d[cat]}: ${formatValue(d[y], fmt)}` }), Plot.ruleX([0])] });
    } else {
      const x = groups[0];
      const mark = type === "area" ? Plot.areaY : type === "bar" ? Plot.rectY : Plot.lineY;
      const series = metrics.flatMap((m) => data.map((d) => ({ x: d[x], y: d[m], metric: this.formats[m]?.label ?? m })));
      const options = type === "bar"
        ? { x: "x", y: "y", fill: metrics.length > 1 ? "metric" : "var(--tally-accent, #3563e9)", interval: grainOf(x) }
        : { x: "x", y: "y", stroke: metrics.length > 1 ? "metric" : "var(--tally-accent, #3563e9)", fill: type === "area" ? "var(--tally-accent, #3563e9)" : undefined, fillOpacity: 0.25 };
      svg = Plot.plot({ ...base, height: 240, x: { label: null }, y: { grid: true, tickFormat: tick, label: metrics.length === 1 ? (this.formats[y]?.label ?? y) : null },
        color: metrics.length > 1 ? { legend: true } : undefined,
        marks: [mark(series, options as Plot.AreaYOptions), Plot.ruleY([0]), Plot.tip(series, Plot.pointerX({ x: "x", y: "y" }))] });
    }
    svg.setAttribute("role", "img");
    svg.setAttribute("aria-label", `${this.heading}: chart of ${this.rows.length} values; the table below lists them.`);
    this.body(`<div class="tally-chart-svg"></div><details class="tally-alt"><summary>Show data</summary>${this.dataTable()}</details>`);
    this.querySelector(".tally-chart-svg")!.appendChild(svg);
  }
}

/** cohort__period_number -> "period number": an axis label when the catalog gives none. */
function pretty(column: string): string {
  const parts = column.split("__").filter((p) => !/^(day|week|month|quarter|year|hour)$/.test(p));
  return (parts[parts.length - 1] ?? column).replace(/_/g, " ");
}

function grainOf(column: string | undefined): "day" | "week" | "month" | "quarter" | "year" | undefined {
  const m = column?.match(/__(day|week|month|quarter|year)$/);
  return m ? (m[1] as "day") : undefined;
}

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]!);
}
