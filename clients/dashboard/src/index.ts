// The bundle: <tally-dashboard>, <tally-chart>, <tally-kpi>, <tally-table>, defined once.
import { TallyDashboard } from "./dashboard.js";
import { TallyChart, TallyKpi, TallyTable } from "./tiles.js";

const elements: [string, CustomElementConstructor][] = [
  ["tally-kpi", TallyKpi], ["tally-chart", TallyChart], ["tally-table", TallyTable],
  ["tally-dashboard", TallyDashboard],
];
for (const [tag, cls] of elements) {
  if (!customElements.get(tag)) customElements.define(tag, cls);
}

export { TallyChart, TallyDashboard, TallyKpi, TallyTable };
export { tileRequest } from "./dashboard.js";
