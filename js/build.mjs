// Builds the front end into hierx_nb/notebook/static/: widget.js (the ES module anywidget loads as
// `_esm`), widget.css (anywidget's `_css`) and report.js (the standalone HTML report's script).
import * as esbuild from "esbuild";
import { fileURLToPath } from "node:url";
import path from "node:path";

const here = path.dirname(fileURLToPath(import.meta.url));
const out = path.join(here, "../hierx_nb/notebook/static");
const common = { bundle: true, minify: true, target: ["es2020"], legalComments: "none", logLevel: "info" };
const builds = [
  { ...common, entryPoints: [path.join(here, "src/widget.js")], outfile: path.join(out, "widget.js"), format: "esm" },
  { ...common, entryPoints: [path.join(here, "src/style.css")], outfile: path.join(out, "widget.css") },
  // An IIFE: inlined in a <script> of the report (esbuild escapes "</script" in its output).
  { ...common, entryPoints: [path.join(here, "src/report.js")], outfile: path.join(out, "report.js"), format: "iife" },
];

if (process.argv.includes("--watch")) {
  for (const b of builds) await (await esbuild.context(b)).watch();
} else {
  await Promise.all(builds.map((b) => esbuild.build(b)));
}
