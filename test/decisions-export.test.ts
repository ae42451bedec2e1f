import { sql } from "drizzle-orm";
import { NextRequest } from "next/server";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { auditEvents } from "@/db/schema";
import { csvCell, csvLine, decisionExportQuery, exportDecisions, exportResponse } from "@/lib/decisions/export";
import { createFleet } from "@/lib/fleets/service";
import { createApiToken, createTokenInput } from "@/lib/auth/tokens";
import * as searchRoute from "@/app/api/v1/admin/decisions/route";
import * as detailRoute from "@/app/api/v1/admin/decisions/[decisionId]/route";
import * as chartsRoute from "@/app/api/v1/admin/decisions/charts/route";
import * as exportRoute from "@/app/api/v1/admin/decisions/export/route";
import * as trailExportRoute from "@/app/api/v1/admin/trail/export/route";
import { newId } from "@/lib/ids";
import { exportTrail, listTrail, trailExportQuery, trailQuery } from "@/lib/trail/service";
import { createTestDb, makeTenant, makeUser, uniq, type MadeUser, type TestDb } from "./db";
import { insertDecisions } from "./decision-rows";
import { expectAppError } from "./expect";
import { makeServer } from "./fleet-helpers";

let t: TestDb;
let owner: MadeUser;
let adminA: MadeUser;
let tenantA: string;
let tenantB: string;
let serverA: string;
let serverB: string;
let fleetId: string;
const now = Date.now();

/** Reads a stream chunk by chunk; returns the chunks' texts. */
async function chunks(s: ReadableStream<Uint8Array>, max = Infinity): Promise<string[]> {
  const out: string[] = [];
  const reader = s.getReader();
  const dec = new TextDecoder();
  while (out.length < max) {
    const { value, done } = await reader.read();
    if (done) break;
    out.push(dec.decode(value));
  }
  if (out.length >= max) await reader.cancel();
  return out;
}

/** A minimal RFC 4180 parser (quoted fields with "" and embedded CR/LF). */
function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let cell = "";
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i]!;
    if (quoted) {
      if (ch === '"' && text[i + 1] === '"') {
        cell += '"';
        i++;
      } else if (ch === '"') quoted = false;
      else cell += ch;
    } else if (ch === '"') quoted = true;
    else if (ch === ",") {
      row.push(cell);
      cell = "";
    } else if (ch === "\r" && text[i + 1] === "\n") {
      row.push(cell);
      rows.push(row);
      row = [];
      cell = "";
      i++;
    } else cell += ch;
  }
  return rows;
}

const g = globalThis as unknown as { __mandateDb?: Promise<unknown> };

beforeAll(async () => {
  t = await createTestDb();
  g.__mandateDb = Promise.resolve(t.handle);
  owner = await makeUser(t.db, { role: "owner" });
  tenantA = (await makeTenant(t.db, owner.actor)).id;
  tenantB = (await makeTenant(t.db, owner.actor)).id;
  adminA = await makeUser(t.db, { memberships: [[tenantA, "admin"]] });
  serverA = (await makeServer(owner.ctx, tenantA))!.id;
  serverB = (await makeServer(owner.ctx, tenantB))!.id;
  fleetId = (await createFleet(owner.ctx, { name: uniq("fleet "), serverIds: [serverA, serverB] }))!.id;
});
afterAll(async () => {
  delete g.__mandateDb;
  await t?.close();
});

describe("CSV cells", () => {
  it("quotes per RFC 4180 and neutralises spreadsheet formulas", () => {
    expect(csvCell("plain")).toBe("plain");
    expect(csvCell('say "hi", now')).toBe('"say ""hi"", now"');
    expect(csvCell("two\nlines")).toBe('"two\nlines"');
    expect(csvCell('=HYPERLINK("http://evil")')).toBe('"\'=HYPERLINK(""http://evil"")"');
    expect(csvCell("+1")).toBe("'+1");
    expect(csvCell("-2+3")).toBe("'-2+3");
    expect(csvCell("@SUM(A1)")).toBe("'@SUM(A1)");
    expect(csvCell(null)).toBe("");
    expect(csvCell(42)).toBe("42");
    expect(csvLine(["a", "b,c"])).toBe('a,"b,c"\r\n');
  });

  it("a decision's hostile values survive a CSV round trip as text", async () => {
    const tenantId = newId("tenant");
    const [row] = await insertDecisions(t.db, [
      { atMs: now - 1000, tenantId, serverId: serverA, fleetId, tool: "t", userId: "=cmd|' /C calc'!A0", reason: 'he said "no",\r\nthen left', args: { note: "@import" } },
    ]);
    const e = exportDecisions(owner.ctx, decisionExportQuery.parse({ tenantId, format: "csv" }));
    const rows = parseCsv((await chunks(e.stream)).join(""));
    expect(rows).toHaveLength(2);
    const [head, data] = rows as [string[], string[]];
    const col = (n: string) => data[head.indexOf(n)];
    expect(col("id")).toBe(row!.id);
    expect(col("user")).toBe("'=cmd|' /C calc'!A0");
    expect(col("reason")).toBe('he said "no",\r\nthen left');
    expect(JSON.parse(col("args")!)).toEqual({ note: "@import" });
  });
});

describe("decision export", () => {
  const tenantId = newId("tenant");
  beforeAll(async () => {
    await insertDecisions(
      t.db,
      Array.from({ length: 5000 }, (_, i) => ({
        atMs: now - 60_000 - i * 10,
        tenantId,
        serverId: serverA,
        fleetId,
        tool: `tool_${i % 7}`,
        outcome: i % 3 ? ("allow" as const) : ("deny" as const),
        args: { n: i },
      })),
    );
  });

  it("streams 5,000 rows in keyset chunks, never all at once", async () => {
    const e = exportDecisions(owner.ctx, decisionExportQuery.parse({ tenantId, format: "ndjson" }));
    const parts = await chunks(e.stream);
    // One chunk per 1,000 rows (the last empty page ends it).
    expect(parts.length).toBe(5);
    expect(parts.every((p) => p.split("\n").filter(Boolean).length === 1000)).toBe(true);
    const lines = parts
      .join("")
      .split("\n")
      .filter(Boolean)
      .map((l) => JSON.parse(l) as { id: string; at: string; args: { n: number } });
    expect(lines).toHaveLength(5000);
    expect(new Set(lines.map((l) => l.id)).size).toBe(5000);
    // Newest first.
    expect(lines.map((l) => l.args.n)).toEqual(Array.from({ length: 5000 }, (_, i) => i));
  });

  it("CSV: a header and one record per filtered row", async () => {
    const e = exportDecisions(owner.ctx, decisionExportQuery.parse({ tenantId, outcome: "deny", format: "csv" }));
    expect(e.filename).toMatch(/^decisions-\d{8}-\d{4}\.csv$/);
    const rows = parseCsv((await chunks(e.stream)).join(""));
    const deny = Array.from({ length: 5000 }, (_, i) => i).filter((i) => i % 3 === 0).length;
    expect(rows.length).toBe(1 + deny);
    expect(rows.slice(1).every((r) => r[rows[0]!.indexOf("outcome")] === "deny")).toBe(true);
  });

  it("stops at the row cap with a trailing note", async () => {
    const e = exportDecisions(owner.ctx, decisionExportQuery.parse({ tenantId, format: "ndjson" }), { maxRows: 1500 });
    const lines = (await chunks(e.stream))
      .join("")
      .split("\n")
      .filter(Boolean)
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines).toHaveLength(1501);
    expect(lines[1500]).toMatchObject({ truncated: true });
  });

  it("answers an attachment", () => {
    const e = exportDecisions(owner.ctx, decisionExportQuery.parse({ tenantId, format: "csv" }));
    const res = exportResponse(e.stream, e.format, e.filename);
    expect(res.headers.get("content-disposition")).toBe(`attachment; filename="${e.filename}"`);
    expect(res.headers.get("content-type")).toBe("text/csv; charset=utf-8");
    void res.body?.cancel();
  });
});

describe("tenant scoping of exports", () => {
  it("a tenant admin exports only their tenant, in both formats; another tenant is a 404", async () => {
    const tool = uniq("scoped_");
    const rows = await insertDecisions(t.db, [
      { atMs: now - 2000, tenantId: tenantA, serverId: serverA, fleetId, tool },
      { atMs: now - 2000, tenantId: tenantB, serverId: serverB, fleetId, tool },
      { atMs: now - 2000, tenantId: null, serverId: serverA, fleetId, tool },
    ]);
    const nd = (await chunks(exportDecisions(adminA.ctx, decisionExportQuery.parse({ tool, format: "ndjson" })).stream)).join("");
    expect(
      nd
        .split("\n")
        .filter(Boolean)
        .map((l) => (JSON.parse(l) as { id: string }).id),
    ).toEqual([rows[0]!.id]);
    const csv = parseCsv((await chunks(exportDecisions(adminA.ctx, decisionExportQuery.parse({ tool, format: "csv" })).stream)).join(""));
    expect(csv.slice(1).map((r) => r[0])).toEqual([rows[0]!.id]);
    const ownerAll = (await chunks(exportDecisions(owner.ctx, decisionExportQuery.parse({ tool, format: "ndjson" })).stream)).join("");
    expect(ownerAll.split("\n").filter(Boolean)).toHaveLength(3);
    expect(() => exportDecisions(adminA.ctx, decisionExportQuery.parse({ tenantId: tenantB }))).toThrow(/not found/);
  });
});

describe("follow (SIEM forwarding)", () => {
  it("after the backlog, oldest first, writes new rows as they arrive and heartbeats when idle", async () => {
    const tenantId = newId("tenant");
    const backlog = await insertDecisions(
      t.db,
      [3, 2, 1].map((k) => ({ atMs: Date.now() - k * 1000, tenantId, serverId: serverA, fleetId })),
    );
    const e = exportDecisions(owner.ctx, decisionExportQuery.parse({ tenantId, format: "ndjson", follow: "1" }), { pollMs: 20, heartbeatMs: 300 });
    const reader = e.stream.getReader();
    const dec = new TextDecoder();
    const first = dec.decode((await reader.read()).value);
    expect(
      first
        .split("\n")
        .filter(Boolean)
        .map((l) => (JSON.parse(l) as { id: string }).id),
    ).toEqual(backlog.map((r) => r.id));
    const late = await insertDecisions(t.db, [{ atMs: Date.now(), tenantId, serverId: serverA, fleetId }]);
    const next = dec.decode((await reader.read()).value);
    expect((JSON.parse(next.trim()) as { id: string }).id).toBe(late[0]!.id);
    const started = Date.now();
    expect(dec.decode((await reader.read()).value)).toBe("\n");
    expect(Date.now() - started).toBeGreaterThanOrEqual(250);
    await reader.cancel();
  });

  it("ends when the caller can no longer read the tenant", async () => {
    const e = exportDecisions(adminA.ctx, decisionExportQuery.parse({ tenantId: tenantA, format: "ndjson", follow: "1", from: new Date(now + 3600_000).toISOString() }), {
      pollMs: 10,
      recheckMs: 0,
      reauth: async () => (await makeUser(t.db)).actor, // membership gone
    });
    const reader = e.stream.getReader();
    expect((await reader.read()).done).toBe(true);
  });

  it("needs NDJSON", () => {
    expect(() => exportDecisions(owner.ctx, decisionExportQuery.parse({ format: "csv", follow: "1" }))).toThrow(/ndjson/);
  });
});

describe("admin trail filters and export", () => {
  it("filters by target type and keeps every event in the same millisecond across pages", async () => {
    const base = new Date("2026-11-20T10:00:00.123Z");
    const ids = Array.from({ length: 6 }, () => newId("event"));
    // Same millisecond, different microseconds: a millisecond cursor would skip some.
    await t.db
      .insert(auditEvents)
      .values(
        ids.map((id, i) => ({ id, at: base, actorType: "system" as const, actorId: "sys", actorLabel: "system", action: "probe.run", targetType: "probe", targetId: `p${i}`, tenantId: tenantA })),
      );
    await t.db.execute(
      sql`update audit_events set at = at + r.n * interval '1 microsecond' from (select id as rid, row_number() over (order by id) as n from audit_events where target_type = 'probe') r where audit_events.id = r.rid`,
    );
    const seen: string[] = [];
    let cursor: string | undefined;
    do {
      const page = await listTrail(owner.ctx, trailQuery.parse({ targetType: "probe", limit: 2, cursor }));
      seen.push(...page.items.map((e) => e.id));
      cursor = page.nextCursor ?? undefined;
    } while (cursor);
    expect(new Set(seen)).toEqual(new Set(ids));
    expect(seen).toHaveLength(6);
  });

  it("exports the filtered trail as CSV and NDJSON, scoped to the actor's tenants", async () => {
    await t.db.insert(auditEvents).values([
      { id: newId("event"), actorType: "system", actorId: "sys", actorLabel: "=danger", action: "probe.export", targetType: "probe", targetId: "a", tenantId: tenantA, after: { ok: true } },
      { id: newId("event"), actorType: "system", actorId: "sys", actorLabel: "system", action: "probe.export", targetType: "probe", targetId: "b", tenantId: tenantB },
    ]);
    const csv = parseCsv((await chunks(exportTrail(adminA.ctx, trailExportQuery.parse({ action: "probe.export", format: "csv" })).stream)).join(""));
    expect(csv).toHaveLength(2);
    expect(csv[1]![csv[0]!.indexOf("target_id")]).toBe("a");
    expect(csv[1]![csv[0]!.indexOf("actor_label")]).toBe("'=danger");
    const nd = (await chunks(exportTrail(owner.ctx, trailExportQuery.parse({ action: "probe.export", format: "ndjson" })).stream)).join("");
    expect(
      nd
        .split("\n")
        .filter(Boolean)
        .map((l) => (JSON.parse(l) as { targetId: string }).targetId)
        .sort(),
    ).toEqual(["a", "b"]);
  });

  it("refuses a forged trail cursor", async () => {
    await expectAppError(listTrail(owner.ctx, trailQuery.parse({ cursor: Buffer.from("yesterday|x").toString("base64url") })), "bad_request");
  });
});

describe("routes (real handlers, API tokens)", () => {
  const get = (path: string, key: string) => new NextRequest(`http://localhost:3000${path}`, { headers: { authorization: `Bearer ${key}` } });
  const noParams = { params: Promise.resolve({}) };

  it("a tenant admin's token reaches only its tenant through search, detail, charts and both exports", async () => {
    const key = (await createApiToken(adminA.ctx, createTokenInput.parse({ name: uniq("tok-"), role: "auditor", tenantId: tenantA }))).token;
    const tool = uniq("http_");
    const [a, b] = await insertDecisions(t.db, [
      { atMs: now - 3000, tenantId: tenantA, serverId: serverA, fleetId, tool, outcome: "deny" },
      { atMs: now - 3000, tenantId: tenantB, serverId: serverB, fleetId, tool, outcome: "deny" },
    ]);
    const search = await searchRoute.GET(get(`/api/v1/admin/decisions?tool=${tool}`, key), noParams);
    expect(search.status).toBe(200);
    expect(((await search.json()) as { items: { id: string }[] }).items.map((i) => i.id)).toEqual([a!.id]);
    expect((await searchRoute.GET(get(`/api/v1/admin/decisions?tenantId=${tenantB}`, key), noParams)).status).toBe(404);
    expect((await detailRoute.GET(get(`/api/v1/admin/decisions/${b!.id}`, key), { params: Promise.resolve({ decisionId: b!.id }) })).status).toBe(404);
    expect((await detailRoute.GET(get(`/api/v1/admin/decisions/${a!.id}`, key), { params: Promise.resolve({ decisionId: a!.id }) })).status).toBe(200);
    const charts = (await (await chartsRoute.GET(get(`/api/v1/admin/decisions/charts?tool=${tool}`, key), noParams)).json()) as { totals: { deny: number } };
    expect(charts.totals.deny).toBe(1);
    for (const format of ["csv", "ndjson"]) {
      const res = await exportRoute.GET(get(`/api/v1/admin/decisions/export?format=${format}&tool=${tool}`, key), noParams);
      expect(res.status).toBe(200);
      expect(res.headers.get("content-disposition")).toMatch(new RegExp(`^attachment; filename="decisions-\\d{8}-\\d{4}\\.${format}"$`));
      const text = await res.text();
      expect(text).toContain(a!.id);
      expect(text).not.toContain(b!.id);
    }
    expect((await exportRoute.GET(get(`/api/v1/admin/decisions/export?tenantId=${tenantB}`, key), noParams)).status).toBe(404);
    expect((await exportRoute.GET(get(`/api/v1/admin/decisions/export?format=csv&follow=1`, key), noParams)).status).toBe(422);
    const trail = await trailExportRoute.GET(get("/api/v1/admin/trail/export?format=ndjson", key), noParams);
    expect(trail.status).toBe(200);
    expect(
      (await trail.text())
        .split("\n")
        .filter(Boolean)
        .every((l) => (JSON.parse(l) as { tenantId: string }).tenantId === tenantA),
    ).toBe(true);
    expect((await exportRoute.GET(get("/api/v1/admin/decisions/export", "mdt_forged.secret"), noParams)).status).toBe(401);
  });
});
