// Loader shim for @modelcontextprotocol/conformance alone (node --import ./scripts/conformance-shim.mjs …):
// it imports `globSync` from "fs", which Node 20 lacks. Imports of "fs" / "node:fs" made by that
// package's own files (0.1.16 at node_modules/@modelcontextprotocol/conformance, 0.2.0-alpha.12 at
// node_modules/conformance-next, its npm alias) resolve to scripts/conformance-fs.mjs (node:fs plus a small globSync);
// every other module, the product included, gets the real node:fs.
import { register } from "node:module";

const hooks = `
const PKGS = ["/node_modules/@modelcontextprotocol/conformance/", "/node_modules/conformance-next/"];
const SHIM = ${JSON.stringify(new URL("./conformance-fs.mjs", import.meta.url).href)};
export async function resolve(specifier, context, next) {
  if ((specifier === "fs" || specifier === "node:fs") && context.parentURL && PKGS.some((p) => context.parentURL.includes(p))) {
    return { url: SHIM, shortCircuit: true };
  }
  return next(specifier, context);
}`;
register(`data:text/javascript,${encodeURIComponent(hooks)}`);
