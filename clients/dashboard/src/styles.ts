// One stylesheet for every component (light DOM, so a host page's CSS custom properties and
// fonts apply). Theme with --tally-* properties on any ancestor.
export const CSS = `
tally-dashboard, tally-chart, tally-kpi, tally-table {
  display: block; box-sizing: border-box;
  font-family: var(--tally-font, system-ui, -apple-system, "Segoe UI", sans-serif);
  color: var(--tally-fg, #1d2330);
}
.tally-header { display: flex; flex-wrap: wrap; align-items: end; gap: 12px; margin: 0 0 12px; }
.tally-header h1 { font-size: 1.35rem; margin: 0 auto 0 0; }
.tally-controls { display: flex; flex-wrap: wrap; gap: 8px; }
.tally-controls label { display: flex; flex-direction: column; font-size: .75rem;
  color: var(--tally-muted, #5b6475); gap: 2px; }
.tally-controls input, .tally-controls select { font: inherit; font-size: .9rem; padding: 4px 6px;
  border: 1px solid var(--tally-border, #cfd5df); border-radius: var(--tally-radius, 6px);
  background: var(--tally-bg, #fff); color: inherit; min-height: 32px; }
.tally-grid { display: grid; gap: var(--tally-gap, 12px);
  grid-template-columns: repeat(auto-fill, minmax(min(100%, 300px), 1fr)); }
@media (min-width: 700px) { .tally-grid > .tally-wide { grid-column: span 2; } }
.tally-tile { background: var(--tally-bg, #fff); border: 1px solid var(--tally-border, #e3e7ee);
  border-radius: var(--tally-radius, 6px); padding: 12px; min-width: 0; overflow: hidden; }
.tally-tile:focus-visible, .tally-controls :focus-visible { outline: 2px solid var(--tally-accent, #3563e9);
  outline-offset: 2px; }
.tally-tile h2 { font-size: .95rem; font-weight: 600; margin: 0 0 8px; }
.tally-kpi-value { font-size: 2rem; font-weight: 650; line-height: 1.1; }
.tally-kpi-delta { font-size: .85rem; color: var(--tally-muted, #5b6475); margin-top: 4px; }
.tally-up { color: var(--tally-positive, #13795b); } .tally-down { color: var(--tally-negative, #c2352b); }
.tally-status { color: var(--tally-muted, #5b6475); font-size: .9rem; padding: 16px 0; }
.tally-error { color: var(--tally-negative, #c2352b); }
.tally-error code { font-size: .8rem; }
.tally-table-wrap { overflow-x: auto; max-height: 360px; }
table.tally-data { border-collapse: collapse; width: 100%; font-size: .85rem; }
table.tally-data th, table.tally-data td { padding: 4px 8px; border-bottom: 1px solid var(--tally-border, #e3e7ee);
  text-align: left; white-space: nowrap; }
table.tally-data td.num, table.tally-data th.num { text-align: right; font-variant-numeric: tabular-nums; }
details.tally-alt summary { font-size: .8rem; color: var(--tally-muted, #5b6475); cursor: pointer; margin-top: 6px; }
.tally-chart-svg svg { max-width: 100%; height: auto; }
`;

let installed = false;

export function installStyles(): void {
  if (installed || typeof document === "undefined") return;
  installed = true;
  const style = document.createElement("style");
  style.dataset.tally = "";
  style.textContent = CSS;
  document.head.appendChild(style);
}
