// Bundles src/widget.js (plotly basic + CSS inlined) into one ES module for anywidget's `_esm`.
import * as esbuild from "esbuild";
import { fileURLToPath } from "node:url";
import path from "node:path";

const here = path.dirname(fileURLToPath(import.meta.url));
const options = {
  entryPoints: [path.join(here, "src/widget.js")],
  outfile: path.join(here, "../hierx_nb/notebook/static/widget.js"),
  bundle: true,
  format: "esm",
  minify: true,
  target: ["es2020"],
  loader: { ".css": "text" }, // imported as a string and put in a <style> inside the widget
  legalComments: "none",
  logLevel: "info",
};

if (process.argv.includes("--watch")) {
  const ctx = await esbuild.context(options);
  await ctx.watch();
} else {
  await esbuild.build(options);
}
