import { randomBytes } from "node:crypto";
import { and, eq } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { auditEvents, findingMarks, oauthClients, policies, privilegeScores, scopeMappings } from "@/db/schema";
import { newId } from "@/lib/ids";
import type { Kek } from "@/lib/bundles/signing";
import { runFindingsJob } from "@/lib/findings/digest";
import { applyRemedy, exportFindings, getSettings, listFindings, previewRemedy, putSettings, scoreHistory } from "@/lib/findings/service";
import { revokeGrant } from "@/lib/grants/service";
import { deletePolicy, simulateDraft, simulateInput } from "@/lib/policy/service";
import { createTestDb, makeTenant, makeUser, type MadeUser, type TestDb } from "./db";
import { insertDecisions } from "./decision-rows";
import { expectAppError } from "./expect";
import { EXPECTED_A, EXPECTED_GLOBAL, seedMonth, type SeededMonth } from "./least-privilege-fixture";

const kek: Kek = { id: "kek-test", key: randomBytes(32) };
const DAY = 86_400_000;

let t: TestDb;
let owner: MadeUser;
let adminA: MadeUser;
let auditorA: MadeUser;
let adminB: MadeUser;
let seed: SeededMonth;

beforeAll(async () => {
  t = await createTestDb();
  owner = await makeUser(t.db, { role: "owner" });
  const a = await makeTenant(t.db, owner.actor, "Acme");
  const b = await makeTenant(t.db, owner.actor, "Beta");
  adminA = await makeUser(t.db, { memberships: [[a.id, "admin"]] });
  auditorA = await makeUser(t.db, { memberships: [[a.id, "auditor"]] });
  adminB = await makeUser(t.db, { memberships: [[b.id, "admin"]] });
  seed = await seedMonth(owner.ctx, a.id, b.id, kek);
}, 120_000);
afterAll(async () => {
  await t?.close();
});

const count = (items: { kind: string; tenantId: string | null }[], tenantId: string | null) => {
  const out: Record<string, number> = {};
  for (const f of items) if (f.tenantId === tenantId) out[f.kind] = (out[f.kind] ?? 0) + 1;
  return out;
};

describe("findings from a seeded month", () => {
  it("finds each kind for the tenant and the fleet-wide ones for owners, with evidence", async () => {
    const r = await listFindings(owner.ctx, {});
    expect(count(r.items, seed.tenantA)).toEqual(EXPECTED_A);
    expect(count(r.items, null)).toEqual(EXPECTED_GLOBAL);
    console.log(
      `[figures] seeded month: ${seed.decisions} decisions; findings for tenant A: ${JSON.stringify(count(r.items, seed.tenantA))}; fleet-wide: ${JSON.stringify(count(r.items, null))}; all tenants computed in ${r.tookMs} ms`,
    );

    const write = r.items.find((f) => f.kind === "unused_scope_mapping" && f.subject.id === "tickets.write")!;
    expect(write.evidence.lists).toEqual({ unusedTools: ["close_ticket", "delete_ticket"], usedTools: ["create_ticket"] });
    expect(write.evidence.calls).toBe(15);
    const bob = r.items.find((f) => f.kind === "over_broad_user" && f.subject.id === "bob")!;
    expect(bob.evidence.counts).toMatchObject({ allowedTools: 7, usedTools: 1 });
    expect(bob.evidence.calls).toBe(30);
    expect(bob.evidence.exampleDecisionIds.length).toBeGreaterThan(0);
    expect(bob.evidence.lastUsedAt).not.toBeNull();
    const grant = r.items.find((f) => f.kind === "unused_grant" && f.subject.id === seed.grantIds.unused)!;
    expect(grant.remedies[0]).toMatchObject({ action: "revoke_grant", api: { method: "POST", path: `/api/v1/admin/grants/${seed.grantIds.unused}/revoke` } });
  });

  it("computes one tenant's findings, timed", async () => {
    const r = await listFindings(adminA.ctx, { tenantId: seed.tenantA });
    expect(count(r.items, seed.tenantA)).toEqual(EXPECTED_A);
    expect(r.items.every((f) => f.tenantId === seed.tenantA)).toBe(true);
    console.log(`[figures] findings computation for tenant A: ${r.tookMs} ms`);
  });
});

describe("permissions", () => {
  it("evidence names another tenant's last use by date only, never by its decision id", async () => {
    const [b] = await insertDecisions(t.db, [
      {
        atMs: Date.now() - 40 * DAY,
        tenantId: seed.tenantB,
        serverId: seed.ticketsServer,
        fleetId: seed.fleetId,
        userId: "mallory",
        clientId: "x",
        scopes: ["admin"],
        tool: "purge",
        outcome: "allow",
        args: {},
      },
    ]);
    const [a] = await insertDecisions(t.db, [
      {
        atMs: Date.now() - 45 * DAY,
        tenantId: seed.tenantA,
        serverId: seed.ticketsServer,
        fleetId: seed.fleetId,
        userId: "alice",
        clientId: "cli-1",
        scopes: ["admin"],
        tool: "purge",
        outcome: "allow",
        args: {},
      },
    ]);
    const r = await listFindings(adminA.ctx, { tenantId: seed.tenantA });
    const purge = r.items.find((f) => f.kind === "uncalled_tool" && f.subject.label === "purge")!;
    expect(purge.evidence.lastUsedAt).toBe(b!.at!.toISOString());
    expect(purge.evidence.exampleDecisionIds).toEqual([a!.id]);
    const pair = r.items.find((f) => f.kind === "unused_scope_mapping" && f.subject.id === "admin")!;
    expect(JSON.stringify(pair.evidence)).not.toContain(b!.id!);
  });

  it("a tenant admin sees only its tenant's findings; another tenant's are 404", async () => {
    const b = await listFindings(adminB.ctx, {});
    expect(b.items.length).toBeGreaterThan(0);
    expect(b.items.every((f) => f.tenantId === seed.tenantB)).toBe(true);
    await expectAppError(listFindings(adminB.ctx, { tenantId: seed.tenantA }), "not_found");
    const a = await listFindings(adminA.ctx, {});
    const aFinding = a.items.find((f) => f.kind === "unused_scope_mapping")!;
    await expectAppError(previewRemedy(adminB.ctx, aFinding.id, { action: "narrow_mapping", acknowledgeFlips: false }), "not_found");
    await expectAppError(previewRemedy(adminB.ctx, aFinding.id, { action: "narrow_mapping", tenantId: seed.tenantA, acknowledgeFlips: false }), "not_found");
    // Fleet-wide findings are for owners and global auditors.
    expect(a.items.some((f) => f.tenantId === null)).toBe(false);
  });

  it("an auditor reads findings but cannot draft a remedy", async () => {
    const a = await listFindings(auditorA.ctx, { tenantId: seed.tenantA });
    const f = a.items.find((x) => x.kind === "unused_scope_mapping")!;
    await expectAppError(previewRemedy(auditorA.ctx, f.id, { action: "narrow_mapping", acknowledgeFlips: false }), "forbidden");
  });

  it("settings: the webhook URL is sealed, never returned, and only tenant writers change them", async () => {
    const s = await putSettings(adminA.ctx, { tenantId: seed.tenantA }, { webhookUrl: "https://hooks.example.com/services/T000/B000/secretpart" }, kek);
    expect(s.webhook).toBe("https://hooks.example.com/…");
    expect(JSON.stringify(s)).not.toContain("secretpart");
    const trail = await t.db.select().from(auditEvents).where(eq(auditEvents.action, "findings.settings"));
    expect(JSON.stringify(trail)).not.toContain("secretpart");
    await expectAppError(putSettings(auditorA.ctx, { tenantId: seed.tenantA }, { unusedDays: 10 }, kek), "forbidden");
    await expectAppError(getSettings(adminB.ctx, { tenantId: seed.tenantA }), "not_found");
    await putSettings(adminA.ctx, { tenantId: seed.tenantA }, { webhookUrl: null }, kek);
  });
});

describe("export", () => {
  it("CSV has a header and a row per finding; NDJSON a finding per line", async () => {
    const all = await listFindings(adminA.ctx, { tenantId: seed.tenantA });
    const csv = await exportFindings(adminA.ctx, { tenantId: seed.tenantA, format: "csv" });
    const lines = csv.body.trimEnd().split("\r\n");
    expect(lines[0]).toMatch(/^id,kind,severity,tenantId/);
    expect(lines.length).toBe(all.items.length + 1);
    expect(csv.contentType).toMatch(/text\/csv/);
    const nd = await exportFindings(adminA.ctx, { tenantId: seed.tenantA, format: "ndjson" });
    const parsed = nd.body
      .trimEnd()
      .split("\n")
      .map((l) => JSON.parse(l) as { id: string; evidence: unknown });
    expect(parsed.map((p) => p.id).sort()).toEqual(all.items.map((f) => f.id).sort());
    expect(parsed[0]!.evidence).toBeTruthy();
    // Another tenant's admin exports only its own.
    const other = await exportFindings(adminB.ctx, { format: "ndjson" });
    expect(other.body).not.toContain(seed.tenantA);
  });
});

describe("remedies", () => {
  it("the draft narrowing an unused scope mapping shows zero allow→deny flips on the traffic it came from", async () => {
    const r = await listFindings(adminA.ctx, { tenantId: seed.tenantA });
    const f = r.items.find((x) => x.kind === "unused_scope_mapping" && x.subject.id === "tickets.write")!;
    const p = await previewRemedy(adminA.ctx, f.id, { action: "narrow_mapping", acknowledgeFlips: false });
    expect(p.impact.issues).toEqual([]);
    expect(p.impact.replayed).toBe(seed.ticketDecisions);
    expect(p.impact.allowToDeny).toBe(0);
    expect(p.impact.denyToAllow).toBe(0);
    // The preview writes nothing.
    const [m] = await t.db.select().from(scopeMappings).where(eq(scopeMappings.serverId, seed.ticketsServer)).orderBy(scopeMappings.version);
    expect(m!.version).toBe(1);
  });

  it("a least-privilege policy for an over-broad user stops none of its calls", async () => {
    const r = await listFindings(adminA.ctx, { tenantId: seed.tenantA });
    const f = r.items.find((x) => x.kind === "over_broad_user" && x.subject.id === "bob")!;
    const p = await previewRemedy(adminA.ctx, f.id, { action: "least_privilege_policy", acknowledgeFlips: false });
    expect(p.impact).toMatchObject({ issues: [], allowToDeny: 0, denyToAllow: 0 });
    expect(p.impact.replayed).toBeGreaterThan(0);
  });

  it("a remedy says which calls it would stop (one denied when made, allowed by the draft now) and is refused until acknowledged", async () => {
    const r = await listFindings(adminA.ctx, { tenantId: seed.tenantA });
    const f = r.items.find((x) => x.kind === "unused_scope_mapping" && x.subject.id === "tickets.read")!;
    // A call denied when it was made (under an older revision), which the draft as it stands would allow:
    // it does not count as use, and narrowing the mapping would keep denying it.
    const [row] = await insertDecisions(t.db, [
      {
        atMs: Date.now() - 60_000,
        tenantId: seed.tenantA,
        serverId: seed.ticketsServer,
        fleetId: seed.fleetId,
        userId: "alice",
        clientId: "cli-1",
        scopes: ["tickets.read"],
        tool: "export_all",
        outcome: "deny",
        args: {},
      },
    ]);
    const p = await previewRemedy(adminA.ctx, f.id, { action: "narrow_mapping", acknowledgeFlips: false });
    expect(p.impact.allowToDeny).toBe(1);
    expect(p.impact.stoppedByTool).toEqual([{ tool: "export_all", calls: 1 }]);
    expect(p.impact.examples[0]).toMatchObject({ id: row!.id, tool: "export_all", before: { decision: "allow" }, after: { decision: "deny" } });
    await expectAppError(applyRemedy(adminA.ctx, f.id, { action: "narrow_mapping", acknowledgeFlips: false }), "conflict");
    const [m] = await t.db.select().from(scopeMappings).where(eq(scopeMappings.serverId, seed.ticketsServer)).orderBy(scopeMappings.version);
    expect(m!.version).toBe(1);
  });

  it("the least-privilege policy of an issuer-qualified user forbids the tools it did not use, and only those", async () => {
    const zed = "https://idp.example/#zed";
    const at = Date.now() - 3 * DAY;
    await insertDecisions(
      t.db,
      [0, 1, 2].map((i) => ({
        atMs: at + i * 1000,
        tenantId: seed.tenantA,
        serverId: seed.ticketsServer,
        fleetId: seed.fleetId,
        userId: zed,
        clientId: "cli-1",
        scopes: ["tickets.read", "tickets.write", "admin"],
        tool: "list_tickets",
        outcome: "allow" as const,
        args: {},
      })),
    );
    const r = await listFindings(adminA.ctx, { tenantId: seed.tenantA });
    const f = r.items.find((x) => x.kind === "over_broad_user" && x.subject.id === zed)!;
    const out = await applyRemedy(adminA.ctx, f.id, { action: "least_privilege_policy", acknowledgeFlips: false });
    expect(out.impact.allowToDeny).toBe(0);
    const ask = (tool: string) =>
      simulateDraft(
        adminA.ctx,
        simulateInput.parse({ tenantId: seed.tenantA, serverId: seed.ticketsServer, request: { user: zed, client: "cli-1", scopes: ["tickets.read", "tickets.write", "admin"], tool, args: {} } }),
      );
    expect((await ask("list_tickets")).decision).toBe("allow");
    expect((await ask("purge")).decision).toBe("deny");
    // Another user with the same subject at another issuer is not this user.
    const other = await simulateDraft(
      adminA.ctx,
      simulateInput.parse({ tenantId: seed.tenantA, serverId: seed.ticketsServer, request: { user: "https://other.example/#zed", scopes: ["admin"], tool: "purge", args: {} } }),
    );
    expect(other.decision).toBe("allow");
    const [pol] = await t.db
      .select()
      .from(policies)
      .where(and(eq(policies.tenantId, seed.tenantA), eq(policies.name, `Least privilege user ${zed}`)));
    await deletePolicy(adminA.ctx, pol!.id);
  });

  it("applying the remedies raises the privilege score, recorded day by day", async () => {
    const day1 = new Date(Date.now() - DAY);
    const job1 = await runFindingsJob(t.db, { keyring: [kek], egress: { loopback: true, cidrs: [] }, now: day1 });
    expect(job1).not.toBeNull();
    const before = job1!.scores.find((s) => s.tenantId === seed.tenantA)!;

    const r = await listFindings(adminA.ctx, { tenantId: seed.tenantA });
    const applied: string[] = [];
    const trailBefore = (await t.db.select().from(auditEvents).where(eq(auditEvents.action, "finding.remedy"))).length;
    // First bob's policy: once the mappings are narrowed, bob no longer uses a small part of what his scopes allow.
    const bob = r.items.find((x) => x.kind === "over_broad_user" && x.subject.id === "bob")!;
    await applyRemedy(adminA.ctx, bob.id, { action: "least_privilege_policy", acknowledgeFlips: false });
    expect(
      (
        await t.db
          .select()
          .from(policies)
          .where(and(eq(policies.tenantId, seed.tenantA), eq(policies.name, "Least privilege user bob")))
      ).length,
    ).toBe(1);
    for (const f of r.items.filter((x) => x.kind === "unused_scope_mapping")) {
      const out = await applyRemedy(adminA.ctx, f.id, { action: "narrow_mapping", acknowledgeFlips: true });
      applied.push(f.subject.id);
      expect(out.impact.issues).toEqual([]);
      expect(out.publishIn.map((x) => x.id)).toEqual([seed.fleetId]);
    }
    for (const f of r.items.filter((x) => x.kind === "unused_grant")) await revokeGrant(adminA.ctx, f.subject.id, { reason: "least privilege" }, kek);

    const job2 = await runFindingsJob(t.db, { keyring: [kek], egress: { loopback: true, cidrs: [] } });
    const after = job2!.scores.find((s) => s.tenantId === seed.tenantA)!;
    console.log(
      `[figures] privilege score of tenant A: before ${before.score}% (${before.used}/${before.granted} used), after remedies ${after.score}% (${after.used}/${after.granted}); unused capability ${before.granted - before.used} → ${after.granted - after.used}`,
    );
    expect(after.granted - after.used).toBeLessThan(before.granted - before.used);
    expect(after.score).toBeGreaterThan(before.score);

    const h = await scoreHistory(adminA.ctx, { tenantId: seed.tenantA, days: 30 });
    expect(h.history.length).toBe(2);
    expect(h.history[1]!.score).toBeGreaterThan(h.history[0]!.score);
    const rows = await t.db.select().from(privilegeScores).where(eq(privilegeScores.tenantId, seed.tenantA));
    expect(rows.length).toBe(2);
    await expectAppError(scoreHistory(adminB.ctx, { tenantId: seed.tenantA, days: 30 }), "not_found");

    const remaining = await listFindings(adminA.ctx, { tenantId: seed.tenantA });
    expect(remaining.items.filter((f) => f.kind === "unused_scope_mapping" || f.kind === "unused_grant")).toEqual([]);
    const trail = await t.db.select().from(auditEvents).where(eq(auditEvents.action, "finding.remedy"));
    expect(trail.length).toBe(trailBefore + applied.length + 1);
  });
});

describe("weekly digest", () => {
  it("runs once across concurrent replicas, lists new findings, and posts to the webhook", async () => {
    const received: unknown[] = [];
    const http = await import("node:http");
    const srv = http.createServer((req, res) => {
      let body = "";
      req.on("data", (c) => (body += c));
      req.on("end", () => {
        received.push(JSON.parse(body));
        res.end("ok");
      });
    });
    await new Promise<void>((r) => srv.listen(0, "127.0.0.1", r));
    const port = (srv.address() as { port: number }).port;
    try {
      await putSettings(adminB.ctx, { tenantId: seed.tenantB }, { webhookUrl: `http://127.0.0.1:${port}/hook/secret-token` }, kek);
      // A finding that appears after the last digest (earlier runs may have digested the seeded ones).
      const longAgo = new Date(Date.now() - 100 * DAY);
      await t.db.insert(oauthClients).values({
        id: newId("client"),
        tenantId: seed.tenantB,
        clientId: "forgotten-cli",
        name: "Forgotten <https://evil.example|click>",
        status: "approved",
        firstSeenAt: longAgo,
        lastSeenAt: longAgo,
        createdAt: longAgo,
      });
      const texts: { scope: string; text: string; fresh: number }[] = [];
      const now = new Date(Date.now() + 8 * DAY);
      const opts = { keyring: [kek], egress: { loopback: true, cidrs: [] }, now, onDigest: (d: { scope: string; text: string; fresh: number }) => void texts.push(d) };
      const runs = await Promise.all([runFindingsJob(t.db, opts), runFindingsJob(t.db, opts)]);
      // On PostgreSQL the second replica skips (advisory lock); on one PGlite connection they queue, and the claim stops the second digest.
      const b = texts.filter((d) => d.scope === seed.tenantB);
      expect(b.length).toBe(1);
      expect(runs.filter((r) => r !== null).length).toBeGreaterThanOrEqual(1);
      expect(b[0]!.text).toMatch(/Least privilege digest for Beta/);
      expect(b[0]!.text).toContain("Client Forgotten <https://evil.example|click> not seen");
      expect(b[0]!.fresh).toBeGreaterThanOrEqual(1);
      expect(received.length).toBe(1);
      const sentText = (received[0] as { text: string }).text;
      expect(sentText).toContain("Least privilege digest for Beta");
      // Names from tokens and upstreams cannot become Slack links or mentions.
      expect(sentText).toContain("Client Forgotten &lt;https://evil.example|click&gt; not seen");
      expect(sentText).not.toContain("<https://evil");
      const marks = await t.db.select().from(findingMarks).where(eq(findingMarks.tenantId, seed.tenantB));
      expect(marks.length).toBeGreaterThan(0);
      // A week later with nothing new: a digest with zero new findings, and no webhook call.
      await runFindingsJob(t.db, { ...opts, now: new Date(now.getTime() + 8 * DAY) });
      expect(received.length).toBe(1);
    } finally {
      srv.close();
    }
  });
});
