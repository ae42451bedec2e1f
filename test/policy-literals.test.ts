/**
 * Policy literals the compiler cannot carry faithfully (follow-ups of issues
 * 10 and 17): an integer past ±(2^53 − 1) (the policy's JSON form passes
 * through JS numbers: it was silently rounded, or made `compileBundle` throw
 * for the whole fleet), and a bare `User::"alice"` (user ids are
 * issuer-qualified, so it matches no token). Both are refused at check/save;
 * one saved before the check is a compile issue of its tenant, held back,
 * never an exception for the fleet. Real PostgreSQL, real services.
 */
import { randomBytes } from "node:crypto";
import { eq } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { fleetServers, fleets, policies } from "@/db/schema";
import { addTool } from "@/lib/catalog/service";
import { activeBundle, draftBundle, publishBundle } from "@/lib/bundles/service";
import { compileBundle, type RegistrySnapshot } from "@/lib/bundles/compile";
import type { Kek } from "@/lib/bundles/signing";
import type { BundleContent } from "@/lib/enforcement/bundle";
import { newId } from "@/lib/ids";
import { checkPolicy, createPolicy } from "@/lib/policy/service";
import { putScopeMapping } from "@/lib/scopes/service";
import { createServerInput } from "@/lib/servers/schemas";
import { createServer } from "@/lib/servers/service";
import { createTestDb, makeTenant, makeUser, uniq, type MadeUser, type TestDb } from "./db";
import { expectAppError } from "./expect";

const kek: Kek = { id: "kek-test", key: randomBytes(32) };
const I64_MAX = "9223372036854775807";
const PAST_2_53 = "9007199254740993";

describe("policy literals", () => {
  let t: TestDb;
  let owner: MadeUser;
  let tenantA: string;
  let tenantB: string;

  beforeAll(async () => {
    t = await createTestDb();
    owner = await makeUser(t.db, { role: "owner" });
    tenantA = (await makeTenant(t.db, owner.actor)).id;
    tenantB = (await makeTenant(t.db, owner.actor)).id;
  });
  afterAll(() => t.close());

  /** A server of A shared with B, with a `refund(amount: integer)` tool mapped to a scope, in a fleet of its own. */
  async function setup() {
    const server = (await createServer(
      owner.ctx,
      createServerInput.parse({
        tenantId: tenantA,
        tenantIds: [tenantB],
        name: uniq("srv "),
        resourceUri: `https://${uniq("mcp-")}.literals.example/mcp`,
        upstreamUrl: "https://up.example/mcp",
        scopes: ["pay"],
      }),
    ))!;
    await addTool(owner.ctx, server.id, { name: "refund", description: "refund", inputSchema: { type: "object", properties: { amount: { type: "integer" } } }, annotations: {}, risk: "high" });
    await putScopeMapping(owner.ctx, server.id, { baseVersion: 0, mapping: { pay: ["refund"] } });
    const fleetId = newId("fleet");
    await t.db.insert(fleets).values({ id: fleetId, name: uniq("fleet ") });
    await t.db.insert(fleetServers).values({ fleetId, serverId: server.id });
    return { serverId: server.id, fleetId };
  }

  /** A policy of `tenantId` saved with `cedar` as it was before the check existed (written past the service). */
  async function savedBeforeTheCheck(tenantId: string, serverId: string, name: string, cedar: string) {
    const p = await createPolicy(owner.ctx, {
      tenantId,
      serverId,
      name,
      description: "",
      kind: "cedar",
      cedar: `forbid (principal, action, resource) when { context.args has amount && context.args.amount > 1000 };`,
      enabled: true,
    });
    await t.db.update(policies).set({ cedar }).where(eq(policies.id, p!.id));
    return p!.id;
  }

  const bigForbid = (n: string) => `forbid (principal, action, resource) when { context.args has amount && context.args.amount > ${n} };`;

  it("check and save refuse an integer literal past 2^53 − 1 with a clear problem", async () => {
    const { serverId } = await setup();
    for (const n of [I64_MAX, PAST_2_53, `-${I64_MAX}`]) {
      const res = await checkPolicy(owner.ctx, { tenantId: tenantB, serverId, cedar: bigForbid(n) });
      expect(res.issues.map((i) => i.message).join("\n"), n).toMatch(/integer literal -?\d+ is out of range: integers in policies are limited to ±9007199254740991/);
      const err = await expectAppError(
        createPolicy(owner.ctx, { tenantId: tenantB, serverId, name: uniq("big "), description: "", kind: "cedar", cedar: bigForbid(n), enabled: true }),
        "validation_failed",
      );
      expect(err.issues!.map((i) => i.message).join("\n")).toMatch(/out of range/);
    }
    // The largest exact integer is fine.
    expect((await checkPolicy(owner.ctx, { tenantId: tenantB, serverId, cedar: bigForbid("9007199254740991") })).issues).toEqual([]);
  });

  it("one tenant's out-of-range literal saved earlier holds back that tenant only; the fleet still compiles and publishes", async () => {
    const { serverId, fleetId } = await setup();
    await publishBundle(owner.ctx, fleetId, { note: "" }, kek);
    await savedBeforeTheCheck(tenantB, serverId, "B huge", bigForbid(I64_MAX));
    await savedBeforeTheCheck(tenantB, serverId, "B rounded", bigForbid(PAST_2_53));
    await createPolicy(owner.ctx, {
      tenantId: tenantA,
      serverId,
      name: "A payers",
      description: "",
      kind: "cedar",
      cedar: `permit (principal in Group::"payers", action, resource == Tool::"${serverId}/refund");`,
      enabled: true,
    });

    const draft = await draftBundle(owner.ctx, fleetId);
    expect(draft.blockers).toEqual([]);
    expect(draft.heldBack.map((h) => h.tenantId)).toEqual([tenantB]);
    const problems = draft.heldBack[0]!.problems.join("\n");
    expect(problems).toMatch(/B huge: integer literal \d+ is out of range/);
    expect(problems).toMatch(/B rounded: integer literal 9007199254740992 is out of range/);

    await publishBundle(owner.ctx, fleetId, { note: "A only" }, kek);
    const c = (await activeBundle(t.db, fleetId))!.content as unknown as BundleContent;
    const names = Object.values(c.policies).map((p) => p.name);
    expect(names).toContain("A payers");
    expect(names).not.toContain("B huge");
    expect(names).not.toContain("B rounded");
    // Nothing rounded went out: no compiled policy compares against 2^53.
    expect(Object.values(c.cedar.policies).join("\n")).not.toMatch(/9007199254740992|9223372036854776000/);
  });

  it("compileBundle never throws for one policy: it reports it as an issue of that policy (pure)", () => {
    const snap: RegistrySnapshot = {
      servers: [
        {
          id: "srv_1",
          tenantId: "ten_a",
          tenantIds: ["ten_a", "ten_b"],
          name: "one",
          resourceUri: "https://one.example/mcp",
          upstreamUrl: "https://up.example/mcp",
          scopes: [],
          prm: { scopesSupported: [] } as never,
          tools: [
            {
              name: "refund",
              risk: "high",
              blocked: false,
              approved: { hash: "h", title: null, description: "", annotations: {}, inputSchema: { type: "object", properties: { amount: { type: "integer" } } } },
            },
          ],
          mapping: {},
        } as never,
      ],
      policies: [
        { id: "pol_b", tenantId: "ten_b", serverId: "srv_1", name: "B huge", kind: "cedar", cedar: bigForbid(I64_MAX), enabled: true },
        { id: "pol_a", tenantId: "ten_a", serverId: "srv_1", name: "A fine", kind: "cedar", cedar: bigForbid("1000"), enabled: true },
      ],
      tests: [],
    };
    const r = compileBundle(snap, { fleetId: "fleet_1", revision: 1, parentRevision: null, createdAt: new Date(0).toISOString() });
    expect(r.issues.map((i) => [i.policy?.id, i.message])).toEqual([["pol_b", expect.stringMatching(/^integer literal \d+ is out of range/)]]);
    expect(Object.keys(r.content.cedar.policies)).toEqual(["pol_a"]);
  });

  it("check and save refuse a bare User uid with a readable problem, found in the policy's JSON form", async () => {
    const { serverId } = await setup();
    const bare = [
      `forbid (principal == User::"alice", action, resource);`,
      `forbid (principal, action, resource) when { principal in [User::"alice"] };`,
      // Spacing and comments a regex over the text would miss.
      `forbid (principal, action, resource) when { principal == User :: // who\n "alice" };`,
    ];
    for (const cedar of bare) {
      const res = await checkPolicy(owner.ctx, { tenantId: tenantB, serverId, cedar });
      expect(
        res.issues.map((i) => i.message),
        cedar,
      ).toContain('User::"alice" matches no user: user ids are issuer-qualified: write User::"<issuer>#alice" or principal.sub == "alice"');
      await expectAppError(createPolicy(owner.ctx, { tenantId: tenantB, serverId, name: uniq("bare "), description: "", kind: "cedar", cedar, enabled: true }), "validation_failed");
    }
    // A qualified id, `principal.sub`, and a string that merely looks like one are fine.
    for (const cedar of [
      `forbid (principal == User::"https://idp.example#alice", action, resource);`,
      `forbid (principal, action, resource) when { principal.sub == "alice" };`,
      `forbid (principal, action, resource) when { principal.sub == "User::\\"alice\\"" };`,
    ]) {
      expect((await checkPolicy(owner.ctx, { tenantId: tenantB, serverId, cedar })).issues, cedar).toEqual([]);
    }
  });

  it("a bare User uid saved earlier is a compile problem of its tenant (held back), not a forbid that silently protects nothing", async () => {
    const { serverId, fleetId } = await setup();
    await publishBundle(owner.ctx, fleetId, { note: "" }, kek);
    await savedBeforeTheCheck(tenantB, serverId, "B no alice", `forbid (principal == User::"alice", action, resource);`);
    const draft = await draftBundle(owner.ctx, fleetId);
    expect(draft.blockers).toEqual([]);
    expect(draft.heldBack.map((h) => h.tenantId)).toEqual([tenantB]);
    expect(draft.heldBack[0]!.problems.join("\n")).toContain('B no alice: User::"alice" matches no user: user ids are issuer-qualified');
  });
});
