/**
 * Issue 10 defect 8: a vault secret placed in the query string (api_key
 * placement "query") must never reach an agent log line. Real parts: the
 * agent's DriftWatcher and CredentialBroker, a local HTTP broker answering
 * as the control plane does, and a local upstream that fails.
 */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CredentialBroker } from "@/agent/credentials";
import { DriftWatcher } from "@/agent/drift";
import { Metrics } from "@/agent/metrics";
import type { Installed } from "@/agent/bundle-sync";
import type { BundleContent } from "@/lib/enforcement/bundle";

const SECRET = "sk-live-QUERY-SECRET-0123456789";
let upstream: Server;
let broker: Server;
let upstreamUrl = "";
let brokerUrl = "";

async function listen(s: Server): Promise<string> {
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
  return `http://127.0.0.1:${(s.address() as AddressInfo).port}`;
}

beforeAll(async () => {
  // An upstream that fails every request, quoting what it received (the worst case for an error path).
  upstream = createServer((req, res) => void res.writeHead(500, { "content-type": "text/plain" }).end(`bad request to ${req.url}`));
  broker = createServer(
    (_req, res) =>
      void res
        .writeHead(200, { "content-type": "application/json" })
        .end(JSON.stringify({ entryId: "sec_1", version: 1, kind: "api_key", placement: { in: "query", name: "api_key" }, secret: SECRET, ttlSeconds: 300 })),
  );
  [upstreamUrl, brokerUrl] = await Promise.all([listen(upstream), listen(broker)]);
});
afterAll(async () => {
  for (const s of [upstream, broker]) {
    s.closeAllConnections();
    await new Promise((r) => s.close(r));
  }
});

describe("agent log lines never carry a query-placed secret", () => {
  it("the catalogue check error names the upstream with its query values redacted", async () => {
    const lines: string[] = [];
    const log = (m: string) => void lines.push(m);
    const metrics = new Metrics();
    const credentials = new CredentialBroker({ controlPlaneUrl: brokerUrl, agentKey: () => "mda_test", metrics, log });
    const content = {
      servers: [{ id: "srv_1", tenantId: "ten_a", upstreamUrl: `${upstreamUrl}/mcp` }],
      credentials: [{ entryId: "sec_1", serverId: "srv_1", tenantId: "ten_a", kind: "api_key", placement: { in: "query", name: "api_key" }, version: 1 }],
    } as unknown as BundleContent;
    const installed = { content, engine: { tool: () => null } } as unknown as Installed;
    const watcher = new DriftWatcher(() => installed, { metrics, log, credentials });
    await watcher.tick(true);
    const failure = lines.find((l) => l.startsWith("catalogue check of srv_1 failed"));
    expect(failure, lines.join("\n")).toBeDefined();
    expect(failure).toContain("api_key=REDACTED");
    expect(failure).toMatch(/HTTP 500/);
    for (const l of lines) expect(l).not.toContain(SECRET);
  });
});
