/**
 * Decision-log shipping against real peers: the agent (real HTTP server,
 * real WAL on disk, real TokenValidator with an issuer's JWKS) and the
 * control plane's agent API route handlers over node:http on the test
 * database. Decisions must reach the `decisions` table exactly once, through
 * control-plane outages, crashes between send and delete, and refused batches.
 */
import { randomBytes } from "node:crypto";
import { mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { count, eq, inArray } from "drizzle-orm";
import { uuidv7 } from "uuidv7";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { McpError } from "@modelcontextprotocol/sdk/types.js";
import { qualifiedUser } from "@/lib/enforcement/token";
import { decisionQuarantine, decisions, tools } from "@/db/schema";
import { stopBundleListener } from "@/lib/agents/bundle-waiter";
import { publishBundle } from "@/lib/bundles/service";
import { activeSigningKey, publicKeys, type Kek } from "@/lib/bundles/signing";
import { approveTool, importCatalog } from "@/lib/catalog/service";
import { createEnrollmentToken, createFleet } from "@/lib/fleets/service";
import { putScopeMapping } from "@/lib/scopes/service";
import { createServerInput } from "@/lib/servers/schemas";
import { createServer } from "@/lib/servers/service";
import { loadConfig, type AgentConfig } from "@/agent/config";
import { startAgent, type RunningAgent, type ShipOptions } from "@/agent/main";
import { Metrics } from "@/agent/metrics";
import { DecisionShipper } from "@/agent/shipper";
import { DecisionWal, type DecisionRecord } from "@/agent/wal";
import { createTestDb, makeTenant, makeUser, uniq, type MadeUser, type TestDb } from "./db";
import { freePort, startSandbox, type Sandbox } from "./sandbox";
import { startIssuer, type Issuer } from "./agent-proc-harness";
import { startShipControlPlane, type ShipControlPlane } from "./agent-ship-harness";

const kek: Kek = { id: "kek-test", key: randomBytes(32) };
const g = globalThis as unknown as { __mandateDb?: Promise<unknown> };
const quiet = () => {};
/** Fast retries for tests (the default backs off up to 30 s). */
const fastShip: ShipOptions = { intervalMs: 100, backoff: (f) => Math.min(500, 50 * 2 ** f) };

let t: TestDb;
let owner: MadeUser;
let sandbox: Sandbox;
let cpl: ShipControlPlane;
let issuer: Issuer;
let agent: RunningAgent;
let config: AgentConfig;
let dataDir: string;
let tenantId: string;
let serverId: string;
let resourceUri: string;
let agentPort: number;
const dirs: string[] = [];

async function until(cond: () => boolean | Promise<boolean>, ms = 30_000, what = "condition"): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`${what} not met in ${ms} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const token = (scope: string) => issuer.sign({ sub: "alice", tenant: tenantId, client_id: "ship-client", scope }, resourceUri);
/** Decisions the agent made so far (its own counter). */
const made = (a = agent) => [...a.metrics.decisions.values()].reduce((x, y) => x + y, 0);
const segmentFiles = async (dir = dataDir) => (await readdir(dir)).filter((f) => /^decisions-\d+\.(sealed|rejected)$/.test(f)).sort();
const rowsOf = async (agentId: string) => Number((await t.db.select({ n: count() }).from(decisions).where(eq(decisions.agentId, agentId)))[0]!.n);
const rowsWithIds = async (ids: string[]) => {
  let n = 0;
  for (let i = 0; i < ids.length; i += 1000)
    n += Number(
      (
        await t.db
          .select({ n: count() })
          .from(decisions)
          .where(inArray(decisions.id, ids.slice(i, i + 1000)))
      )[0]!.n,
    );
  return n;
};

/** `n` denied tools/call requests straight over HTTP (`concurrency` at a time); the decision ids the agent answered with. */
async function deny(n: number, concurrency = 16, a = agent): Promise<string[]> {
  const bearer = `Bearer ${await token("tickets:read")}`;
  const ids: string[] = [];
  let next = 0;
  const worker = async () => {
    while (next < n) {
      const i = next++;
      const res = await fetch(`${a.url}/mcp`, {
        method: "POST",
        headers: { "content-type": "application/json", accept: "application/json, text/event-stream", authorization: bearer },
        // delete_project is approved but no scope grants it: denied here, never forwarded.
        body: JSON.stringify({ jsonrpc: "2.0", id: i, method: "tools/call", params: { name: "delete_project", arguments: { project: `p${i}` } } }),
      });
      const body = (await res.json()) as { error?: { code: number; data?: { decisionId: string } } };
      if (res.status !== 200 || body.error?.code !== -32003) throw new Error(`unexpected answer ${res.status} ${JSON.stringify(body)}`);
      ids.push(body.error.data!.decisionId);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return ids;
}

function agentConfig(over: Partial<AgentConfig> = {}): AgentConfig {
  return { ...config, enrollmentToken: null, ...over };
}

beforeAll(async () => {
  t = await createTestDb();
  g.__mandateDb = Promise.resolve(t.handle);
  owner = await makeUser(t.db, { role: "owner" });
  [sandbox, cpl, issuer, agentPort] = await Promise.all([startSandbox(), startShipControlPlane(), startIssuer(), freePort()]);
  resourceUri = `http://127.0.0.1:${agentPort}/mcp`;
  tenantId = (await makeTenant(t.db, owner.actor)).id;
  const server = await createServer(
    owner.ctx,
    createServerInput.parse({
      tenantId,
      name: uniq("Tickets "),
      resourceUri,
      upstreamUrl: sandbox.url,
      scopes: ["tickets:read", "tickets:write"],
      issuers: [{ issuer: issuer.issuer, jwksUri: issuer.jwksUri, discovery: false, algorithms: ["ES256"] }],
    }),
  );
  serverId = server!.id;
  await importCatalog(owner.ctx, serverId);
  for (const tool of await t.db.select().from(tools).where(eq(tools.serverId, serverId))) await approveTool(owner.ctx, tool.id, { versionId: tool.latestVersionId });
  await putScopeMapping(owner.ctx, serverId, { baseVersion: 0, mapping: { "tickets:read": ["list_tickets", "get_ticket"], "tickets:write": ["create_ticket", "close_ticket"] } });
  const fleet = (await createFleet(owner.ctx, { name: uniq("Edge "), serverIds: [serverId] }))!;
  await activeSigningKey(t.db, kek);
  const keys = await publicKeys(t.db);
  const enrollment = await createEnrollmentToken(owner.ctx, fleet.id);
  await publishBundle(owner.ctx, fleet.id, { note: "ship" }, kek);

  dataDir = await mkdtemp(path.join(tmpdir(), "mandate-ship-"));
  dirs.push(dataDir);
  const loaded = loadConfig(["--control-plane", cpl.url, "--enrollment-token", enrollment.token, "--port", String(agentPort), "--data-dir", dataDir, "--wait", "2", "--name", "ship-agent"], {
    MANDATE_BUNDLE_KEYS: JSON.stringify({ keys: Object.entries(keys).map(([kid, k]) => ({ ...k, kid })) }),
  });
  if (!loaded.ok) throw new Error(loaded.errors.join("; "));
  config = loaded.config;
  agent = await startAgent(config, { log: quiet, ship: fastShip });
  await until(async () => (await fetch(`${agent.url}/readyz`)).status === 200, 30_000, "agent ready");
}, 120_000);

afterAll(async () => {
  await agent?.stop();
  await Promise.all([sandbox?.stop(), cpl?.close(), issuer?.close()]);
  delete g.__mandateDb;
  if (t) await stopBundleListener(t.handle);
  await t?.close();
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

describe("decision-log shipping", () => {
  it("decisions made through the agent reach the decisions table exactly once, gzip, and the segments are deleted", async () => {
    const client = new Client({ name: "ship-test", version: "1.0.0" });
    await client.connect(new StreamableHTTPClientTransport(new URL(`${agent.url}/mcp`), { requestInit: { headers: { Authorization: `Bearer ${await token("tickets:read tickets:write")}` } } }));
    await client.listTools();
    await client.callTool({ name: "list_tickets", arguments: { status: "open" } });
    const denied = (await client.callTool({ name: "delete_project", arguments: { project: "ops" } }).catch((e: unknown) => e)) as McpError;
    await client.close();
    const ids = [(denied.data as { decisionId: string }).decisionId, ...(await deny(50))];
    const total = made();
    expect(total).toBe(53);

    await until(() => agent.metrics.logBacklog().lines === 0, 30_000, "backlog drained");
    expect(await rowsOf(agent.sync.agentId!)).toBe(total);
    expect(await rowsWithIds(ids)).toBe(ids.length);
    const [row] = await t.db.select().from(decisions).where(eq(decisions.id, ids[0]!));
    expect(row).toMatchObject({
      agentId: agent.sync.agentId,
      fleetId: agent.sync.fleetId,
      serverId,
      tenantId,
      method: "tools/call",
      tool: "delete_project",
      userId: qualifiedUser(issuer.issuer, "alice"),
      clientId: "ship-client",
      outcome: "deny",
      bundleRevision: 1,
      args: { project: "ops" },
    });
    // The context the decision saw travels with it (no masking rule here, so nothing masked).
    expect(row!.context).toMatchObject({ token: { iss: expect.any(String) as string, iat: expect.any(Number) as number, exp: expect.any(Number) as number } });
    expect(await rowsOf(agent.sync.agentId!)).toBe(total);
    expect(agent.metrics.decisionsShipped).toBe(total);
    expect(await segmentFiles()).toEqual([]);
    expect((await readFile(path.join(dataDir, "decisions.wal"))).length).toBe(0);
    const metrics = await (await fetch(`${agent.url}/metrics`)).text();
    expect(metrics).toContain("mandate_log_backlog 0\n");
    expect(metrics).toContain(`mandate_decisions_shipped_total ${total}\n`);

    // gzip, as NDJSON, with the agent key; every batch acknowledged.
    expect(cpl.posts.length).toBeGreaterThan(0);
    for (const p of cpl.posts) {
      expect(p.headers["content-encoding"]).toBe("gzip");
      expect(p.headers["content-type"]).toBe("application/x-ndjson");
      expect(String(p.headers.authorization)).toMatch(/^Bearer mda_/);
      expect(p.status).toBe(200);
    }
  });

  it("a control-plane outage under load: the WAL grows, nothing is lost; after the restart every decision arrives exactly once", async () => {
    const before = made();
    const rowsBefore = await rowsOf(agent.sync.agentId!);
    expect(rowsBefore).toBe(before);
    await cpl.close();
    const ids = await deny(2000, 16);
    await agent.wal.flush();
    const during = agent.metrics.logBacklog();
    expect(made() - before).toBe(2000);
    expect(during.lines).toBe(2000);
    expect(during.bytes).toBeGreaterThan(2000 * 300);
    // On disk: sealed segments (one waiting for the control plane, more rotated at 5,000 lines) plus the active file.
    const files = await segmentFiles();
    expect(files.length).toBeGreaterThan(0);
    const onDisk = (await Promise.all([...files, "decisions.wal"].map((f) => readFile(path.join(dataDir, f), "utf8"))))
      .join("")
      .split("\n")
      .filter(Boolean)
      .map((l) => (JSON.parse(l) as DecisionRecord).id);
    expect(new Set(onDisk)).toEqual(new Set(ids));
    expect(await rowsOf(agent.sync.agentId!)).toBe(rowsBefore);
    expect((await (await fetch(`${agent.url}/metrics`)).text()).match(/^mandate_log_backlog (\d+)$/m)?.[1]).toBe("2000");

    cpl = await startShipControlPlane(cpl.port);
    await until(() => agent.metrics.logBacklog().lines === 0, 60_000, "backlog drained after the restart");
    expect(await rowsOf(agent.sync.agentId!)).toBe(made());
    expect(await rowsWithIds(ids)).toBe(2000);
    expect(await segmentFiles()).toEqual([]);
  });

  it("a crash between an acknowledged send and the deletion: the restart resends, the row count stays exact", async () => {
    await agent.stop();
    let crashedAt: string | null = null;
    const crashing = await startAgent(agentConfig(), {
      log: quiet,
      ship: {
        ...fastShip,
        hooks: {
          afterAck: ({ segment }) => {
            if (crashedAt) return;
            crashedAt = segment;
            return "crash";
          },
        },
      },
    });
    await until(async () => (await fetch(`${crashing.url}/readyz`)).status === 200, 30_000, "crashing agent ready");
    const ids = await deny(40, 8, crashing);
    await until(() => crashedAt !== null, 30_000, "a batch acknowledged");
    const more = await deny(10, 4, crashing); // after the "crash": written ahead, never sent by this process
    // The batch is stored, but its segment was not deleted.
    expect(await rowsWithIds(ids)).toBeGreaterThan(0);
    expect(await segmentFiles()).toContain(crashedAt);
    await crashing.stop(); // the shipper is dead: the stop ships nothing; the WAL keeps everything
    expect(await segmentFiles()).toContain(crashedAt);
    expect(await rowsOf(crashing.sync.agentId!)).toBeLessThan(2053 + made(crashing));

    const postsBefore = cpl.posts.length;
    agent = await startAgent(agentConfig(), { log: quiet, ship: fastShip });
    await until(() => agent.metrics.logBacklog().lines === 0, 30_000, "backlog drained after the restart");
    expect(agent.metrics.decisionsDuplicates).toBeGreaterThan(0); // the acknowledged batch went again
    expect(await rowsWithIds([...ids, ...more])).toBe(50);
    // Every decision of the three agent runs so far, once: 53 + 2000 + 50.
    expect(await rowsOf(agent.sync.agentId!)).toBe(2103);
    expect(cpl.posts.length).toBeGreaterThan(postsBefore);
    expect(await segmentFiles()).toEqual([]);
  });

  it("a segment with bad lines ships its good lines, the bad ones are quarantined by the control plane (counted), no segment is set aside (issue 10.2)", async () => {
    const dir = await mkdtemp(path.join(tmpdir(), "mandate-ship-bad-"));
    dirs.push(dir);
    const rec = (over: Partial<DecisionRecord> = {}): DecisionRecord => ({
      id: uuidv7(),
      time: new Date().toISOString(),
      agentId: agent.sync.agentId,
      bundleRevision: 1,
      tenantId,
      serverId,
      method: "tools/call",
      tool: "list_tickets",
      user: "bob",
      client: "ship-client",
      scopes: ["tickets:read"],
      outcome: "allow",
      determining: [],
      reason: "",
      latencyUs: 12,
      ...over,
    });
    const nd = (rs: unknown[]) => rs.map((r) => JSON.stringify(r) + "\n").join("");
    // Lines an older or broken writer could have left: a server outside the fleet, a method of the wrong type and size, a foreign tenant.
    const first = [rec(), rec({ serverId: "srv_not_in_this_fleet" }), { ...rec(), method: { evil: "x".repeat(5000) } }, rec(), rec({ tenantId: "ten_someone_else" })];
    const good = [rec(), rec()];
    const afterTorn = rec();
    await writeFile(path.join(dir, "decisions-000000000001.sealed"), nd(first));
    await writeFile(path.join(dir, "decisions-000000000002.sealed"), nd(good));
    // A crash tore the last line of the active file.
    await writeFile(path.join(dir, "decisions.wal"), nd([afterTorn]) + JSON.stringify(rec()).slice(0, 40));

    const key = agent.sync.agentKey!;
    const logs: string[] = [];
    const metrics = new Metrics();
    const wal = new DecisionWal(dir);
    await wal.open();
    expect(wal.backlog().lines).toBe(5 + 2 + 2);
    const shipper = new DecisionShipper({ wal, controlPlaneUrl: cpl.url, agentKey: () => key, metrics, log: (m) => logs.push(m), ...fastShip });
    shipper.start();
    await until(() => wal.backlog().lines === 0, 30_000, "all segments handled");
    await shipper.stop();
    await wal.close();

    expect(await segmentFiles(dir)).toEqual([]);
    const ids = (rs: unknown[]) => rs.map((r) => (r as DecisionRecord).id);
    // The good lines of the first segment are stored beside its bad ones; the method of the wrong type was normalized and stored.
    expect(await rowsWithIds([first[0], first[2], first[3]].map((r) => (r as DecisionRecord).id))).toBe(3);
    const [normalized] = await t.db
      .select({ method: decisions.method })
      .from(decisions)
      .where(eq(decisions.id, (first[2] as DecisionRecord).id));
    expect(normalized!.method).toBe("(invalid)");
    expect(await rowsWithIds(ids([first[1], first[4]]))).toBe(0);
    expect(await rowsWithIds(ids([...good, afterTorn]))).toBe(3);
    const q = await t.db.select().from(decisionQuarantine).where(eq(decisionQuarantine.agentId, agent.sync.agentId!));
    expect(q.map((r) => r.decisionId)).toEqual(expect.arrayContaining(ids([first[1], first[4]])));
    expect(q.map((r) => r.problem)).toEqual(
      expect.arrayContaining(["serverId: this agent's fleet does not serve that server", "tenantId: that server does not serve this tenant for this agent's fleet", "not valid JSON"]),
    );
    expect(metrics.decisionsQuarantined).toBe(3);
    expect(metrics.decisionsRejected).toBe(0);
    expect(await metrics.render(null)).toContain("mandate_decisions_quarantined_total 3\n");
    expect(logs.join("\n")).not.toContain(key);
  });

  it("a batch refused as a whole (malformed transport) is retried a bounded number of times, then set aside; later segments still ship", async () => {
    const dir = await mkdtemp(path.join(tmpdir(), "mandate-ship-refused-"));
    dirs.push(dir);
    const line = (marker: string) =>
      JSON.stringify({
        id: uuidv7(),
        time: new Date().toISOString(),
        agentId: null,
        serverId,
        tenantId,
        method: "tools/call",
        tool: marker,
        outcome: "deny",
        reason: "",
        scopes: [],
        determining: [],
        latencyUs: 1,
      }) + "\n";
    await writeFile(path.join(dir, "decisions-000000000001.sealed"), line("refuse-me"));
    await writeFile(path.join(dir, "decisions-000000000002.sealed"), line("fine"));
    // A peer in front of the control plane that refuses the first segment's transport (as a broken proxy would), and forwards the rest.
    let refusals = 0;
    const { createServer: createHttp } = await import("node:http");
    const { gunzipSync } = await import("node:zlib");
    const proxy = createHttp((req, res) => {
      const chunks: Buffer[] = [];
      req.on("data", (c: Buffer) => chunks.push(c));
      req.on("end", () => {
        const body = Buffer.concat(chunks);
        if (gunzipSync(body).toString().includes("refuse-me")) {
          refusals++;
          res.writeHead(400, { "content-type": "application/json" }).end(JSON.stringify({ error: { message: "The gzip body is corrupt" } }));
          return;
        }
        const headers = { authorization: req.headers.authorization!, "content-type": req.headers["content-type"]!, "content-encoding": req.headers["content-encoding"]! };
        void fetch(`${cpl.url}${req.url}`, { method: "POST", headers, body }).then(async (r) =>
          res.writeHead(r.status, { "content-type": "application/json" }).end(Buffer.from(await r.arrayBuffer())),
        );
      });
    });
    await new Promise<void>((r) => proxy.listen(0, "127.0.0.1", r));
    const url = `http://127.0.0.1:${(proxy.address() as { port: number }).port}`;
    const logs: string[] = [];
    const metrics = new Metrics();
    const wal = new DecisionWal(dir);
    await wal.open();
    const shipper = new DecisionShipper({ wal, controlPlaneUrl: url, agentKey: () => agent.sync.agentKey!, metrics, log: (m) => logs.push(m), ...fastShip, backoff: () => 10, maxRefusals: 3 });
    shipper.start();
    await until(() => wal.backlog().lines === 0, 30_000, "both segments handled");
    await shipper.stop();
    await wal.close();
    await new Promise((r) => proxy.close(r));
    expect(refusals).toBe(1 + 3);
    expect(await segmentFiles(dir)).toEqual(["decisions-000000000001.rejected"]);
    expect(metrics.decisionsRejected).toBe(1);
    expect(logs.join("\n")).toMatch(/refused the transport of decisions-000000000001\.sealed \(400/);
  });

  it("a revoked agent key (401) stops shipping and says so; the decisions stay on disk", async () => {
    const dir = await mkdtemp(path.join(tmpdir(), "mandate-ship-401-"));
    dirs.push(dir);
    const id = uuidv7();
    await writeFile(
      path.join(dir, "decisions.wal"),
      JSON.stringify({ id, serverId, tenantId, method: "tools/call", tool: "x", outcome: "deny", reason: "r", scopes: [], determining: [], latencyUs: 1 }) + "\n",
    );
    const logs: string[] = [];
    const metrics = new Metrics();
    const wal = new DecisionWal(dir);
    await wal.open();
    const bogus = `mda_${randomBytes(16).toString("hex")}.${randomBytes(32).toString("base64url")}`;
    const shipper = new DecisionShipper({ wal, controlPlaneUrl: cpl.url, agentKey: () => bogus, metrics, log: (m) => logs.push(m), ...fastShip });
    shipper.start();
    await until(() => shipper.halted !== null, 15_000, "halted");
    expect(metrics.shippingHalted).toBe(1);
    expect(logs.join("\n")).toMatch(/shipping stopped: .*401/);
    expect(logs.join("\n")).not.toContain(bogus);
    expect(await shipper.flush(1000)).toEqual({ left: 1 });
    await wal.close();
    expect(await segmentFiles(dir)).toEqual(["decisions-000000000001.sealed"]);
    expect(await rowsWithIds([id])).toBe(0);
  });
});
