// Bundles the components (with the TypeScript client and Observable Plot) into one ES module,
// dist/tally-dashboard.js, and checks the budget: at most 250 KB gzipped of JavaScript for a
// dashboard page. Prints the sizes; fails over budget.
import { build } from "esbuild";
import { gzipSync } from "node:zlib";
import { readFileSync, readdirSync, writeFileSync } from "node:fs";

const BUDGET = 250 * 1024;
await build({
  entryPoints: ["src/index.ts"],
  bundle: true,
  format: "esm",
  splitting: true, // apache-arrow (Arrow results) only in a chunk loaded on demand
  chunkNames: "chunks/[name]-[hash]",
  minify: true,
  sourcemap: false,
  target: ["es2022"],
  outdir: "dist",
  entryNames: "tally-dashboard",
  legalComments: "none",
  logLevel: "warning",
});
const main = readFileSync("dist/tally-dashboard.js");
// What a page loads: the entry and the chunks it imports statically.
const statics = [...main.toString().matchAll(/from"\.\/(chunks\/[^"]+)"/g)].map((m) => m[1]);
let raw = main.length, gz = gzipSync(main, { level: 9 }).length;
for (const c of statics) { const b = readFileSync(`dist/${c}`); raw += b.length; gz += gzipSync(b, { level: 9 }).length; }
const lazy = readdirSync("dist/chunks").filter((c) => !statics.includes(`chunks/${c}`));
const report = { entry: "tally-dashboard.js", raw_bytes: raw, gzip_bytes: gz, budget_gzip_bytes: BUDGET, lazy_chunks: lazy };
writeFileSync("dist/bundle-size.json", JSON.stringify(report, null, 2));
console.log(`dashboard page JavaScript: ${(raw / 1024).toFixed(1)} KB, ${(gz / 1024).toFixed(1)} KB gzipped (budget ${BUDGET / 1024} KB); loaded on demand: ${lazy.length} chunk(s)`);
if (gz > BUDGET) { console.error("over the bundle budget"); process.exit(1); }
