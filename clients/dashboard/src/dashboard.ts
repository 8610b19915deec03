// <tally-dashboard name="overview" [base-url] [token]>: a dashboard defined as code on the
// server (GET /api/v1/dashboards/{name}), with its controls (date range, grain, dimension
// pickers fed by dimension values) and one tile element per tile. A control's change re-runs
// the tiles it affects.
import type { DashboardDefinition, QueryRequest, TileDefinition, Where } from "@tally/client";
import { installStyles } from "./styles.js";
import { TallyTile, clientFor, escapeHtml } from "./tiles.js";

const TIME_TILES = new Set(["line", "area"]);

interface Choices { start: string | null; end: string | null; grain: string; picked: Record<string, string> }

/** The tile's query under the controls: the same rule as tally.core.dashboards.tile_request. */
export function tileRequest(d: DashboardDefinition, t: TileDefinition, c: Choices): QueryRequest {
  const groups = t.group_by.length ? t.group_by : TIME_TILES.has(t.type) ? ["metric_time"] : [];
  const where: Where[] = [...t.where];
  for (const p of d.controls.pickers) {
    const value = c.picked[p.dimension];
    if (value && (!p.applies_to.length || p.applies_to.includes(t.name))) {
      where.push({ dimension: p.dimension, op: "in", values: [value] });
    }
  }
  return {
    metrics: t.metrics,
    group_by: groups.map((g) => (g === "metric_time" ? `metric_time__${t.grain ?? c.grain}` : g)),
    where,
    order_by: t.order_by,
    limit: t.limit ?? null,
    start: t.date_range ? c.start : null,
    end: t.date_range ? c.end : null,
  };
}

export class TallyDashboard extends HTMLElement {
  static observedAttributes = ["name", "token", "base-url"];
  private definition: DashboardDefinition | null = null;
  private choices: Choices = { start: null, end: null, grain: "month", picked: {} };
  private loading = 0;

  connectedCallback(): void {
    installStyles();
    void this.load();
  }

  attributeChangedCallback(_n: string, old: string | null, value: string | null): void {
    if (old !== value && this.isConnected) void this.load();
  }

  private client() {
    const base = this.getAttribute("base-url") ?? new URL(import.meta.url).origin;
    return clientFor(base, this.getAttribute("token"));
  }

  async load(): Promise<void> {
    const name = this.getAttribute("name");
    const run = ++this.loading;
    this.dataset.state = "loading";
    this.innerHTML = `<div class="tally-status" aria-busy="true">Loading dashboard…</div>`;
    if (!name) return this.fail("invalid_request", "Set the dashboard's name: <tally-dashboard name=\"...\">.");
    try {
      const d = await this.client().dashboard(name);
      if (run !== this.loading) return;
      this.definition = d;
      this.choices = { start: d.controls.start, end: d.controls.end, grain: d.controls.grain, picked: {} };
      this.render(d);
      this.dataset.state = "ready";
      this.refresh();
      void this.fillPickers(d);
    } catch (e) {
      if (run !== this.loading) return;
      const err = e as { code?: string; message?: string };
      this.fail(err.code ?? "network_error", err.message ?? String(e));
    }
  }

  private fail(code: string, message: string): void {
    this.dataset.state = "error";
    this.dataset.errorCode = code;
    this.innerHTML = `<div class="tally-tile"><div class="tally-status tally-error" role="alert">${escapeHtml(message)} <code>${escapeHtml(code)}</code></div></div>`;
  }

  private render(d: DashboardDefinition): void {
    const c = d.controls;
    const id = (s: string) => `tally-${d.name}-${s}`.replace(/[^\w-]/g, "_");
    const grains = c.grains.map((g) => `<option value="${g}"${g === c.grain ? " selected" : ""}>${g}</option>`).join("");
    const pickers = c.pickers.map((p) => `<label for="${id(p.dimension)}">${escapeHtml(p.label)}<select id="${id(p.dimension)}" data-picker="${escapeHtml(p.dimension)}"><option value="">All</option></select></label>`).join("");
    const dates = c.start || c.end
      ? `<label for="${id("start")}">From<input type="date" id="${id("start")}" data-control="start" value="${c.start ?? ""}"></label>
         <label for="${id("end")}">To<input type="date" id="${id("end")}" data-control="end" value="${c.end ?? ""}"></label>` : "";
    this.innerHTML = `<div class="tally-header"><h1>${escapeHtml(d.title)}</h1>
      <form class="tally-controls" aria-label="Dashboard controls" onsubmit="return false">${dates}
      <label for="${id("grain")}">Grain<select id="${id("grain")}" data-control="grain">${grains}</select></label>${pickers}</form></div>
      <div class="tally-grid"></div>`;
    const grid = this.querySelector(".tally-grid")!;
    for (const t of d.tiles) {
      const tag = t.type === "kpi" ? "tally-kpi" : t.type === "table" ? "tally-table" : "tally-chart";
      const el = document.createElement(tag) as TallyTile;
      el.setAttribute("title", t.title);
      el.dataset.tile = t.name;
      if (tag === "tally-chart") el.setAttribute("type", t.type);
      if (t.compare) el.dataset.compare = t.compare;
      if (t.width > 1) el.classList.add("tally-wide");
      el.formats = d.metrics;
      grid.appendChild(el);
    }
    this.querySelector("form")!.addEventListener("change", (ev) => this.onChange(ev.target as HTMLInputElement));
  }

  private onChange(target: HTMLInputElement | HTMLSelectElement): void {
    const control = target.dataset.control;
    const picker = target.dataset.picker;
    if (control === "start" || control === "end") this.choices[control] = target.value || null;
    else if (control === "grain") this.choices.grain = target.value;
    else if (picker) this.choices.picked[picker] = target.value;
    else return;
    this.refresh(control, picker);
  }

  /** Re-run the tiles a control affects (all of them on first render). */
  refresh(control?: string, picker?: string): void {
    const d = this.definition;
    if (!d) return;
    const affected = picker ? d.controls.pickers.find((p) => p.dimension === picker)?.applies_to ?? [] : [];
    for (const el of this.querySelectorAll<TallyTile>("[data-tile]")) {
      const t = d.tiles.find((x) => x.name === el.dataset.tile)!;
      if (picker && affected.length && !affected.includes(t.name)) continue;
      if ((control === "start" || control === "end") && !t.date_range) continue;
      const request = tileRequest(d, t, this.choices);
      if (control === "grain" && JSON.stringify(request) === JSON.stringify(el.request)) continue;
      el.request = request;
      void el.load();
    }
  }

  private async fillPickers(d: DashboardDefinition): Promise<void> {
    for (const p of d.controls.pickers) {
      const select = this.querySelector<HTMLSelectElement>(`select[data-picker="${p.dimension}"]`);
      if (!select) continue;
      try {
        const values = await this.client().dimensionValues(p.dimension, { limit: 500 });
        for (const v of values) {
          const option = document.createElement("option");
          option.value = option.textContent = String(v);
          select.appendChild(option);
        }
        select.dataset.loaded = "true";
      } catch {
        select.disabled = true;
        select.title = "Values unavailable";
      }
    }
  }
}
