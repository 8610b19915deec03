// Number formats from the metric definitions (meta.format: currency | percent), and the
// period before a date range (a KPI's comparison; the same rule as tally.core.dashboards).

export interface MetricFormat { label?: string; format?: string | null; currency?: string | null }

const cache = new Map<string, Intl.NumberFormat>();

function formatter(kind: string, currency: string, compact: boolean): Intl.NumberFormat {
  const key = `${kind}|${currency}|${compact}`;
  let f = cache.get(key);
  if (!f) {
    const options: Intl.NumberFormatOptions =
      kind === "currency" ? { style: "currency", currency, maximumFractionDigits: compact ? 1 : 2 }
      : kind === "percent" ? { style: "percent", maximumFractionDigits: 1 }
      : { maximumFractionDigits: 2 };
    if (compact) options.notation = "compact";
    f = new Intl.NumberFormat(undefined, options);
    cache.set(key, f);
  }
  return f;
}

export function toNumber(value: unknown): number | null {
  if (value === null || value === undefined || value === "") return null;
  const n = typeof value === "number" ? value : Number(value);
  return Number.isFinite(n) ? n : null;
}

export function formatValue(value: unknown, fmt: MetricFormat | undefined, compact = false): string {
  const n = toNumber(value);
  if (n === null) return value === null || value === undefined ? "–" : String(value);
  return formatter(fmt?.format ?? "number", fmt?.currency ?? "USD", compact).format(n);
}

export function formatCell(value: unknown): string {
  if (value === null || value === undefined) return "–";
  if (typeof value === "string" && /^\d{4}-\d{2}-\d{2}/.test(value)) return value.slice(0, 10);
  return String(value);
}

function iso(d: Date): string {
  return d.toISOString().slice(0, 10);
}

/** Whole months shift by their number of months; any other range by its number of days. */
export function previousPeriod(start: string, end: string): [string, string] {
  const s = new Date(`${start}T00:00:00Z`);
  const e = new Date(`${end}T00:00:00Z`);
  const next = new Date(e.getTime() + 86_400_000);
  const dayBefore = new Date(s.getTime() - 86_400_000);
  if (s.getUTCDate() === 1 && next.getUTCDate() === 1) {
    const months = (next.getUTCFullYear() - s.getUTCFullYear()) * 12 + next.getUTCMonth() - s.getUTCMonth();
    const first = new Date(Date.UTC(s.getUTCFullYear(), s.getUTCMonth() - months, 1));
    return [iso(first), iso(dayBefore)];
  }
  const days = Math.round((e.getTime() - s.getTime()) / 86_400_000) + 1;
  return [iso(new Date(s.getTime() - days * 86_400_000)), iso(dayBefore)];
}
