// node:fs plus `globSync` (Node ≥ 22) for @modelcontextprotocol/conformance on Node 20; see conformance-shim.mjs.
import fs from "node:fs";
import path from "node:path";

export * from "node:fs";
export default fs;

/** Enough of fs.globSync for the suite: `*`, `?` and `**` patterns relative to `cwd`; returns relative paths. */
export function globSync(pattern, options = {}) {
  if (typeof fs.globSync === "function") return fs.globSync(pattern, options);
  const cwd = options.cwd ? String(options.cwd) : process.cwd();
  const patterns = Array.isArray(pattern) ? pattern : [pattern];
  const regexes = patterns.map((p) => {
    let re = "";
    for (let i = 0; i < p.length; i++) {
      const c = p[i];
      if (c === "*" && p[i + 1] === "*") {
        re += p[i + 2] === "/" ? "(?:.*/)?" : ".*";
        i += p[i + 2] === "/" ? 2 : 1;
      } else if (c === "*") re += "[^/]*";
      else if (c === "?") re += "[^/]";
      else re += c.replace(/[.+^${}()|[\]\\]/g, "\\$&");
    }
    return new RegExp(`^${re}$`);
  });
  const out = [];
  const walk = (rel) => {
    let entries;
    try {
      entries = fs.readdirSync(path.join(cwd, rel), { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      const r = rel ? `${rel}/${e.name}` : e.name;
      if (regexes.some((x) => x.test(r))) out.push(r.split("/").join(path.sep));
      if (e.isDirectory()) walk(r);
    }
  };
  walk("");
  return out;
}
