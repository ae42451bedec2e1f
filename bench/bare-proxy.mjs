/**
 * The floor a gateway is measured against (bench/gateway.ts): a bare Node
 * reverse proxy with no authentication and no decision. It drops the
 * client's Authorization and cookies, adds the upstream key, and streams the
 * answer back through an undici Pool with keep-alive.
 *
 *   node bench/bare-proxy.mjs <port> <upstream-url> [upstream-key]
 */
import { createServer } from "node:http";
import { Pool } from "undici";

const [port, upstreamUrl, key = "bench-upstream-key"] = process.argv.slice(2);
const target = new URL(upstreamUrl);
const pool = new Pool(target.origin, { connections: 64, pipelining: 1, keepAliveTimeout: 30_000 });
const PASS = ["mcp-protocol-version", "accept", "mcp-session-id", "content-type", "last-event-id"];
const BACK = ["content-type", "mcp-protocol-version", "mcp-session-id", "cache-control"];

createServer((req, res) => {
  req.on("error", () => {});
  const headers = { authorization: `Bearer ${key}` };
  for (const h of PASS) if (typeof req.headers[h] === "string") headers[h] = req.headers[h];
  const hasBody = req.method === "POST";
  pool.request({ path: target.pathname + target.search, method: req.method, headers, body: hasBody ? req : null }).then(
    (up) => {
      const out = {};
      for (const h of BACK) if (up.headers[h] !== undefined) out[h] = up.headers[h];
      res.writeHead(up.statusCode, out);
      up.body.on("error", () => res.destroy());
      up.body.pipe(res);
      res.on("close", () => up.body.destroy());
    },
    () => {
      if (!res.headersSent) res.writeHead(502).end();
    },
  );
}).listen(Number(port), "127.0.0.1", () => process.send?.("ready"));
