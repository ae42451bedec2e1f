/**
 * "Every outbound fetch goes through one egress guard": no server code in
 * agent/ or lib/ reaches the network past lib/net/egress.ts. Fails when a
 * new bare `fetch(`, a `?? fetch` default, an undici or node:http(s) client
 * import, or a `new Pool(`/`new Agent(` appears outside the guard.
 */
import { readdirSync, readFileSync, statSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";

const ROOT = path.resolve(__dirname, "..");

/** Files allowed to hold a pattern, each with why. */
const ALLOWED: Record<string, string> = {
  // The guard itself.
  "lib/net/egress.ts": "the egress guard",
  // Browser code: the dashboard's own same-origin API, not an outbound request of the server.
  "lib/client/api.ts": "browser fetch to the dashboard's own API",
  // Undici Pools whose connector is the guard's (guardedConnect), checked per connection and at bundle install.
  "agent/upstream.ts": "upstream pools built on guardedConnect",
  // A parameter named fetch: callers pass the guard's fetch (lib/catalog/service.ts: createEgressFetch).
  "lib/vault/upstream-auth.ts": "calls its fetch parameter, given by callers through the guard",
  // Serves requests (a server), never sends one.
  "lib/auth/peer-stamp.ts": "an HTTP server, not a client",
};

const PATTERNS: Array<[RegExp, string]> = [
  [/(?<![.\w$])fetch\s*\(/, "a bare fetch( call"],
  [/\?\?\s*fetch\b(?!\w)/, "a default to the global fetch"],
  [/=>\s*fetch\s*\(/, "a wrapper around the global fetch"],
  [/from\s+["']undici["']/, "an undici import"],
  // A client of node:http(s): the default import, or request/get/Agent (createServer and types are a server's).
  [/import\s+\w+\s*(,|from)[^;]*["']node:https?["']|import\s*\{[^}]*\b(request|get|Agent)\b[^}]*\}\s*from\s*["']node:https?["']|require\(["'](node:)?https?["']\)/, "a node:http(s) client import"],
  [/new\s+(Pool|Client|Agent)\s*\(\s*[`"'a-z]/, "an undici dispatcher"],
];

function files(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const p = path.join(dir, name);
    if (statSync(p).isDirectory()) out.push(...files(p));
    else if (/\.(ts|tsx|mts|mjs)$/.test(name)) out.push(p);
  }
  return out;
}

/** The code of a file without comments (a comment may name fetch). */
function code(text: string): string {
  return text.replace(/\/\*[\s\S]*?\*\//g, "").replace(/(^|[^:"'`])\/\/.*$/gm, "$1");
}

describe("egress lint", () => {
  it("no outbound request in agent/ or lib/ bypasses lib/net/egress.ts", () => {
    const found: string[] = [];
    for (const file of [...files(path.join(ROOT, "agent")), ...files(path.join(ROOT, "lib"))]) {
      const rel = path.relative(ROOT, file).split(path.sep).join("/");
      if (ALLOWED[rel]) continue;
      const lines = code(readFileSync(file, "utf8")).split("\n");
      lines.forEach((line, i) => {
        // node:http types only (IncomingMessage, ServerResponse) are no client.
        if (/^\s*import\s+type\b/.test(line)) return;
        for (const [re, what] of PATTERNS) if (re.test(line)) found.push(`${rel}:${i + 1}: ${what}: ${line.trim().slice(0, 120)}`);
      });
    }
    expect(found).toEqual([]);
  });

  it("catches the patterns it is meant to (the check itself can fail)", () => {
    const hits = (src: string) =>
      code(src)
        .split("\n")
        .filter((l) => PATTERNS.some(([re]) => re.test(l)));
    expect(hits('const r = await fetch("https://x");')).toHaveLength(1);
    expect(hits("this.f = o.fetch ?? fetch;")).toHaveLength(1);
    expect(hits("const f = (...a) => fetch(...a);")).toHaveLength(1);
    expect(hits('import { request } from "undici";')).toHaveLength(1);
    expect(hits('import https from "node:https";')).toHaveLength(1);
    expect(hits('import { request } from "node:http";')).toHaveLength(1);
    expect(hits('import { createServer, type IncomingMessage } from "node:http";')).toHaveLength(0);
    expect(hits("const p = new Pool(origin, {});")).toHaveLength(1);
    expect(hits("await this.fetch(url); // fetch(x)")).toHaveLength(0);
    expect(hits("fetch?: FetchLike;")).toHaveLength(0);
  });
});
