import { and, asc, eq, inArray, sql, type SQL } from "drizzle-orm";
import { z } from "zod";
import { policies, policyTests, type Policy, type PolicyRule, type PolicyTest } from "@/db/schema";
import type { Db } from "@/db/client";
import { can, seesAllTenants } from "@/lib/auth/permissions";
import { compileBundle, runTests, type RegistrySnapshot } from "@/lib/bundles/compile";
import { storePolicyConversions } from "@/lib/bundles/conversions";
import { decisionInputs } from "@/lib/bundles/decision-live";
import { getBundle } from "@/lib/bundles/service";
import { loadSnapshot } from "@/lib/bundles/snapshot";
import type { Ctx } from "@/lib/context";
import { isUniqueViolation } from "@/lib/db-errors";
import type { BundleContent } from "@/lib/enforcement/bundle";
import { decide, decisionView, type LiveState } from "@/lib/enforcement/decide";
import { ENTITY_TYPE, MAX_ENTRY_KEY } from "@/lib/enforcement/catalogue-entry";
import { actions as cedarActions, argumentTypes, serverSchemaOf, type CedarAction } from "@/lib/enforcement/model";
import { AppError, conflict, forbidden, notFound } from "@/lib/errors";
import { newId } from "@/lib/ids";
import { loadServer } from "@/lib/servers/service";
import { recordEvent } from "@/lib/trail/record";
import { jsonDepthExceeds } from "@/lib/enforcement/cedar";
import { analyzeCedar } from "./cedar-check";
import { argRefs, entityRefs, policyJsonProblems, schemaText, type CedarIssue } from "./cedar-tools";
import { compileRule, policyRuleSchema } from "./rule";

const name = z.string().trim().min(2, "must be at least 2 characters").max(80);

export const policyInput = z
  .object({
    tenantId: z.string(),
    serverId: z.string(),
    name,
    description: z.string().trim().max(2000).default(""),
    kind: z.enum(["rule", "cedar"]),
    rule: policyRuleSchema.optional().describe("For kind rule: the rule-editor form"),
    cedar: z
      .string()
      .max(64 * 1024)
      .optional()
      .describe("For kind cedar: the policy text"),
    enabled: z.boolean().default(true),
  })
  .superRefine((v, ctx) => {
    if (v.kind === "rule" && !v.rule) ctx.addIssue({ code: "custom", path: ["rule"], message: "is required for a rule" });
    if (v.kind === "cedar" && !v.cedar?.trim()) ctx.addIssue({ code: "custom", path: ["cedar"], message: "write the policy" });
  });
export const policyUpdateInput = z.object({
  name: name.optional(),
  description: z.string().trim().max(2000).optional(),
  rule: policyRuleSchema.optional(),
  cedar: z
    .string()
    .max(64 * 1024)
    .optional(),
  enabled: z.boolean().optional(),
  baseUpdatedAt: z.iso.datetime({ offset: true }).optional().describe("The policy's updatedAt as the editor loaded it: the save is refused (409) if it changed since (optimistic concurrency)"),
});
export const cedarCheckInput = z.object({
  tenantId: z.string(),
  serverId: z.string(),
  cedar: z
    .string()
    .max(64 * 1024)
    .optional(),
  rule: policyRuleSchema.optional(),
});

/** Nesting allowed in a test's or a simulation's arguments (the decision reads top-level values only). */
const MAX_ARGS_DEPTH = 16;

const testRequestSchema = z.object({
  user: z.string().trim().min(1).max(200),
  groups: z.array(z.string().max(200)).max(50).default([]),
  client: z.string().trim().max(200).default(""),
  scopes: z.array(z.string().max(128)).max(100).default([]),
  tool: z.string().min(1).max(128),
  action: z.enum(["call_tool", "list_tools"]).default("call_tool"),
  // Policies read only top-level arguments; a deep value is refused here instead of being walked by the engine.
  args: z
    .record(z.string(), z.unknown())
    .refine((a) => !jsonDepthExceeds(a, MAX_ARGS_DEPTH), `arguments may nest at most ${MAX_ARGS_DEPTH} levels`)
    .default({}),
  time: z.iso.datetime({ offset: true }).optional(),
});
export const policyTestInput = z.object({ tenantId: z.string(), serverId: z.string(), name, request: testRequestSchema, expected: z.enum(["allow", "deny"]) });
export const policyTestUpdateInput = z.object({ name: name.optional(), request: testRequestSchema.optional(), expected: z.enum(["allow", "deny"]).optional() });
/** A simulated request: any action of the model, on a tool, resource URI, URI template or prompt name. */
const simulateRequestSchema = testRequestSchema.extend({
  tool: z.string().min(1).max(MAX_ENTRY_KEY).describe("The tool or prompt name, resource URI or URI template the action names"),
  action: z.enum(cedarActions).default("call_tool"),
});
/** The JSON-RPC method an agent decides each action for (lib/enforcement/decide.ts). */
const METHOD_OF: Record<CedarAction, string> = {
  call_tool: "tools/call",
  list_tools: "tools/list",
  read_resource: "resources/read",
  list_resources: "resources/list",
  list_resource_templates: "resources/templates/list",
  get_prompt: "prompts/get",
  list_prompts: "prompts/list",
  complete: "completion/complete",
};
export const simulateInput = z.object({
  tenantId: z.string(),
  serverId: z.string(),
  request: simulateRequestSchema,
  fleetId: z.string().optional().describe("With revision: decide against that published bundle; without: against the server's current draft"),
  revision: z.number().int().min(1).optional(),
  issuedAt: z.iso
    .datetime({ offset: true })
    .optional()
    .describe(
      "When the simulated token was issued (checked against revocations). Default: long ago, i.e. any token the caller may still hold, so a revocation in force shows as a denial; give a later time to simulate a token obtained after it",
    ),
  issuer: z.string().max(2048).optional().describe("The simulated token's issuer (context.token.iss)"),
});

/** The actor may write policies of this tenant on this server (which the tenant may use). */
async function authorize(ctx: Ctx, tenantId: string, serverId: string, write: boolean) {
  const { server, tenantIds } = await loadServer(ctx, serverId, "servers.read");
  if (!tenantIds.includes(tenantId) || !can(ctx.actor, "tenants.read", tenantId)) throw notFound("Tenant on this server");
  if (write && !can(ctx.actor, "policies.write", tenantId)) throw forbidden();
  return server;
}

function publicPolicy(p: Policy) {
  return { ...p, createdAt: p.createdAt.toISOString(), updatedAt: p.updatedAt.toISOString() };
}

/** Checks Cedar text for one tenant's policy on one server: parse, schema validation (with lines), named entities. */
export async function checkCedar(ctx: Ctx, tenantId: string, serverId: string, text: string, snap?: RegistrySnapshot): Promise<CedarIssue[]> {
  return (await checkCedarText(ctx, tenantId, serverId, text, { snap })).issues;
}

/** checkCedar, and the formatted text when there is no issue. Admin text is parsed in the isolated Cedar worker, bounded first. */
async function checkCedarText(
  ctx: Ctx,
  tenantId: string,
  serverId: string,
  text: string,
  opts: { snap?: RegistrySnapshot; format?: boolean } = {},
): Promise<{ issues: CedarIssue[]; formatted: string | null }> {
  const s = (opts.snap ?? (await loadSnapshot(ctx.db, [serverId]))).servers.find((x) => x.id === serverId)!;
  const approved = s.tools.filter((t) => t.approved && !t.blocked).map((t) => ({ kind: t.kind, name: t.name, inputSchema: t.approved!.inputSchema }));
  const { schema, types, stringArgs } = serverSchemaOf(approved);
  const analysis = await analyzeCedar(text, schema, { format: opts.format });
  if (!analysis.ok) return { issues: analysis.issues, formatted: null };
  const issues = analysis.issues;
  // Entity ids a policy may name: this server's catalogue entries of each kind (Tool, Resource, ResourceTemplate, Prompt).
  const known = new Set(s.tools.map((t) => `${ENTITY_TYPE[t.kind ?? "tool"]}::${serverId}/${t.name}`));
  const entityTypes = new Set(Object.values(ENTITY_TYPE) as string[]);
  for (const json of analysis.policies) {
    issues.push(...policyJsonProblems(json));
    for (const a of argRefs(json))
      if (!(a in types) && !stringArgs.includes(a)) issues.push({ message: `argument "${a}" is not an argument of any approved tool, prompt or resource template of ${s.name}` });
    for (const e of entityRefs(json)) {
      if (entityTypes.has(e.type) && (!e.id.startsWith(`${serverId}/`) || !known.has(`${e.type}::${e.id}`))) issues.push({ message: `${e.type}::"${e.id}" is not in the catalogue of ${s.name}` });
      if (e.type === "Server" && e.id !== serverId) issues.push({ message: `Server::"${e.id}" is not this policy's server` });
      if (e.type === "Tenant" && e.id !== tenantId) issues.push({ message: `Tenant::"${e.id}" is not this policy's tenant` });
    }
  }
  return { issues, formatted: issues.length ? null : analysis.formatted };
}

function textOf(kind: "rule" | "cedar", serverId: string, nameStr: string, rule?: PolicyRule, cedar?: string) {
  return kind === "rule" ? compileRule(rule!, serverId, { name: nameStr }) : cedar!;
}

function rejectIssues(issues: CedarIssue[]) {
  if (issues.length) {
    throw new AppError(
      "validation_failed",
      `The policy has ${issues.length} problem${issues.length > 1 ? "s" : ""}`,
      issues.map((i) => ({ path: "cedar", message: `${i.line ? `line ${i.line}, column ${i.column}: ` : ""}${i.message}${i.help ? ` (${i.help})` : ""}` })),
    );
  }
}

/** Live check for the editor: issues with positions, the formatted text and the compiled Cedar of a rule. */
export async function checkPolicy(ctx: Ctx, input: z.infer<typeof cedarCheckInput>) {
  await authorize(ctx, input.tenantId, input.serverId, false);
  const text = input.rule ? compileRule(input.rule, input.serverId, { name: "preview" }) : (input.cedar ?? "");
  const { issues, formatted } = await checkCedarText(ctx, input.tenantId, input.serverId, text, { format: true });
  return { cedar: text, issues, formatted };
}

/** The Cedar schema the compiler generates for a server (what editor validation uses). */
export async function serverSchema(ctx: Ctx, serverId: string) {
  await loadServer(ctx, serverId, "servers.read");
  const snap = await loadSnapshot(ctx.db, [serverId]);
  const approved = snap.servers[0]!.tools.filter((t) => t.approved && !t.blocked).map((t) => ({ kind: t.kind, name: t.name, inputSchema: t.approved!.inputSchema }));
  // The tools' argument types, and the string arguments of prompts and templates (lib/enforcement/model.ts serverSchemaOf).
  const { schema, types, conflicts } = serverSchemaOf(approved);
  // Each tool's own argument names, so the editor completes context.args.* for the tools a policy names.
  const toolArgs = (t: (typeof snap.servers)[number]["tools"][number]) => (t.approved ? Object.keys(argumentTypes([{ inputSchema: t.approved.inputSchema }]).types).sort() : []);
  return {
    schema,
    text: schemaText(schema),
    arguments: types,
    conflicts,
    tools: snap.servers[0]!.tools.map((t) => ({ kind: t.kind ?? "tool", name: t.name, approved: Boolean(t.approved), blocked: t.blocked, arguments: toolArgs(t) })),
  };
}

export async function listPolicies(ctx: Ctx, q: { tenantId?: string; serverId?: string }) {
  const filters: SQL[] = [];
  if (!seesAllTenants(ctx.actor)) {
    const mine = [...ctx.actor.tenantRoles.keys()];
    if (!mine.length) return { items: [] };
    filters.push(inArray(policies.tenantId, mine));
  }
  if (q.tenantId) filters.push(eq(policies.tenantId, q.tenantId));
  if (q.serverId) filters.push(eq(policies.serverId, q.serverId));
  const rows = await ctx.db
    .select()
    .from(policies)
    .where(filters.length ? and(...filters) : undefined)
    .orderBy(asc(policies.name))
    .limit(500);
  return { items: rows.map(publicPolicy) };
}

async function loadPolicy(ctx: Ctx, id: string, write: boolean) {
  const [p] = await ctx.db.select().from(policies).where(eq(policies.id, id));
  if (!p || !can(ctx.actor, "tenants.read", p.tenantId)) throw notFound("Policy");
  if (write && !can(ctx.actor, "policies.write", p.tenantId)) throw forbidden();
  return p;
}

export async function getPolicy(ctx: Ctx, id: string) {
  return publicPolicy(await loadPolicy(ctx, id, false));
}

const duplicate = (err: unknown): never => {
  if (isUniqueViolation(err)) throw new AppError("conflict", "A policy with this name already exists for this tenant and server", [{ path: "name", message: "already exists" }]);
  throw err;
};

export async function createPolicy(ctx: Ctx, input: z.infer<typeof policyInput>) {
  await authorize(ctx, input.tenantId, input.serverId, true);
  const cedar = textOf(input.kind, input.serverId, input.name, input.rule as PolicyRule | undefined, input.cedar);
  // One read of the server for the check and for the conversions stored after the save.
  const snap = await loadSnapshot(ctx.db, [input.serverId]);
  rejectIssues(await checkCedar(ctx, input.tenantId, input.serverId, cedar, snap));
  const id = newId("policy");
  const row = await ctx.db
    .transaction(async (tx) => {
      const [row] = await tx
        .insert(policies)
        .values({
          id,
          tenantId: input.tenantId,
          serverId: input.serverId,
          name: input.name,
          description: input.description,
          kind: input.kind,
          rule: (input.rule as PolicyRule | undefined) ?? null,
          cedar,
          enabled: input.enabled,
        })
        .returning();
      await recordEvent(tx, ctx.actor, { action: "policy.create", targetType: "policy", targetId: id, tenantId: input.tenantId, after: trailState(row!) });
      await storeConversions(tx, snap, row!);
      return row!;
    })
    .catch(duplicate);
  return publicPolicy(row);
}

/**
 * In the save's transaction (a savepoint: a failure never fails the save): the Cedar conversions the
 * fleets serving the policy's server will look up for it (lib/bundles/conversions.ts), so the first
 * compile of a fleet finds them. One commit for both: no second wait for a durable write.
 */
async function storeConversions(tx: Db, snap: RegistrySnapshot, p: Policy) {
  const server = snap.servers.find((s) => s.id === p.serverId);
  if (server) await storePolicyConversions(tx, server, { id: p.id, tenantId: p.tenantId, serverId: p.serverId, name: p.name, kind: p.kind, cedar: p.cedar, enabled: p.enabled });
}

/** A policy's state as the admin trail keeps it: what "Restore this version" brings back (lib/policy/restore.ts). */
export function trailState(p: Policy) {
  return { name: p.name, enabled: p.enabled, cedar: p.cedar, ...(p.kind === "rule" && p.rule ? { rule: p.rule } : {}) };
}

/**
 * Changes a policy (revalidated against the server's schema). `opts.restoredFrom`
 * marks a restore of an earlier version (recorded as policy.restore).
 */
export async function updatePolicy(ctx: Ctx, id: string, { baseUpdatedAt, ...input }: z.infer<typeof policyUpdateInput>, opts: { restoredFrom?: { eventId: string; at: string } } = {}) {
  const before = await loadPolicy(ctx, id, true);
  const stale = () => conflict(`This policy was changed by someone else at ${before.updatedAt.toISOString()}; reload it and apply your edit again`, "baseUpdatedAt");
  if (before.kind === "rule" && input.cedar !== undefined) throw new AppError("bad_request", "A rule policy is edited through its rule");
  if (before.kind === "cedar" && input.rule !== undefined) throw new AppError("bad_request", "A Cedar policy is edited as Cedar");
  const nextName = input.name ?? before.name;
  const cedar = before.kind === "rule" ? compileRule((input.rule as PolicyRule | undefined) ?? before.rule!, before.serverId, { name: nextName }) : (input.cedar ?? before.cedar);
  const snap = await loadSnapshot(ctx.db, [before.serverId]);
  rejectIssues(await checkCedar(ctx, before.tenantId, before.serverId, cedar, snap));
  const row = await ctx.db
    .transaction(async (tx) => {
      // Compared at millisecond precision, as the API shows it; checked in the UPDATE itself so two saves cannot both pass.
      const unchanged = baseUpdatedAt ? sql`date_trunc('milliseconds', ${policies.updatedAt}) = ${new Date(baseUpdatedAt).toISOString()}::timestamptz` : undefined;
      const [row] = await tx
        .update(policies)
        .set({ ...input, ...(input.rule ? { rule: input.rule as PolicyRule } : {}), cedar, updatedAt: new Date() })
        .where(and(eq(policies.id, before.id), unchanged))
        .returning();
      if (!row) throw stale();
      await recordEvent(tx, ctx.actor, {
        action: opts.restoredFrom ? "policy.restore" : "policy.update",
        targetType: "policy",
        targetId: id,
        tenantId: before.tenantId,
        before: trailState(before),
        after: { ...trailState(row!), ...(opts.restoredFrom ? { restoredFrom: opts.restoredFrom } : {}) },
      });
      await storeConversions(tx, snap, row!);
      return row!;
    })
    .catch(duplicate);
  return publicPolicy(row);
}

export async function deletePolicy(ctx: Ctx, id: string) {
  const before = await loadPolicy(ctx, id, true);
  await ctx.db.transaction(async (tx) => {
    await tx.delete(policies).where(eq(policies.id, before.id));
    await recordEvent(tx, ctx.actor, { action: "policy.delete", targetType: "policy", targetId: id, tenantId: before.tenantId, before: { name: before.name, cedar: before.cedar } });
  });
}

// ---------------------------------------------------------------- tests

function publicTest(t: PolicyTest) {
  return { ...t, createdAt: t.createdAt.toISOString(), updatedAt: t.updatedAt.toISOString() };
}

async function loadTest(ctx: Ctx, id: string, write: boolean) {
  const [t] = await ctx.db.select().from(policyTests).where(eq(policyTests.id, id));
  if (!t || !can(ctx.actor, "tenants.read", t.tenantId)) throw notFound("Test");
  if (write && !can(ctx.actor, "policies.write", t.tenantId)) throw forbidden();
  return t;
}

export async function listTests(ctx: Ctx, q: { tenantId?: string; serverId?: string }) {
  const filters: SQL[] = [];
  if (!seesAllTenants(ctx.actor)) {
    const mine = [...ctx.actor.tenantRoles.keys()];
    if (!mine.length) return { items: [] };
    filters.push(inArray(policyTests.tenantId, mine));
  }
  if (q.tenantId) filters.push(eq(policyTests.tenantId, q.tenantId));
  if (q.serverId) filters.push(eq(policyTests.serverId, q.serverId));
  const rows = await ctx.db
    .select()
    .from(policyTests)
    .where(filters.length ? and(...filters) : undefined)
    .orderBy(asc(policyTests.name))
    .limit(1000);
  return { items: rows.map(publicTest) };
}

export async function createTest(ctx: Ctx, input: z.infer<typeof policyTestInput>) {
  await authorize(ctx, input.tenantId, input.serverId, true);
  const id = newId("policyTest");
  try {
    return await ctx.db.transaction(async (tx) => {
      const [row] = await tx
        .insert(policyTests)
        .values({ id, ...input })
        .returning();
      await recordEvent(tx, ctx.actor, { action: "policy_test.create", targetType: "policy_test", targetId: id, tenantId: input.tenantId, after: input });
      return publicTest(row!);
    });
  } catch (err) {
    if (isUniqueViolation(err)) throw new AppError("conflict", "A test with this name already exists", [{ path: "name", message: "already exists" }]);
    throw err;
  }
}

export async function updateTest(ctx: Ctx, id: string, input: z.infer<typeof policyTestUpdateInput>) {
  const before = await loadTest(ctx, id, true);
  try {
    return await ctx.db.transaction(async (tx) => {
      const [row] = await tx
        .update(policyTests)
        .set({ ...input, updatedAt: new Date() })
        .where(eq(policyTests.id, before.id))
        .returning();
      await recordEvent(tx, ctx.actor, { action: "policy_test.update", targetType: "policy_test", targetId: id, tenantId: before.tenantId, before: publicTest(before), after: input });
      return publicTest(row!);
    });
  } catch (err) {
    if (isUniqueViolation(err)) throw new AppError("conflict", "A test with this name already exists", [{ path: "name", message: "already exists" }]);
    throw err;
  }
}

export async function deleteTest(ctx: Ctx, id: string) {
  const before = await loadTest(ctx, id, true);
  await ctx.db.transaction(async (tx) => {
    await tx.delete(policyTests).where(eq(policyTests.id, before.id));
    await recordEvent(tx, ctx.actor, { action: "policy_test.delete", targetType: "policy_test", targetId: id, tenantId: before.tenantId, before: publicTest(before) });
  });
}

/**
 * The draft as one tenant sees it: only the policies and tests of the tenants
 * the actor reads (or of one tenant). Decisions for those tenants are the same
 * as in the full bundle, because every policy is confined to its own tenant;
 * another tenant's policies, and their errors, stay out of sight.
 */
function visibleDraft(ctx: Ctx, snap: RegistrySnapshot, tenantId?: string): RegistrySnapshot {
  const keep = (t: string) => can(ctx.actor, "tenants.read", t) && (!tenantId || t === tenantId);
  return { ...snap, policies: snap.policies.filter((p) => keep(p.tenantId)), tests: snap.tests.filter((t) => keep(t.tenantId)) };
}

/** Compiles the current policies of one server as a draft and runs its tests (of tenants the actor reads). */
export async function runServerTests(ctx: Ctx, serverId: string, tenantId?: string) {
  await loadServer(ctx, serverId, "servers.read");
  const snap = visibleDraft(ctx, await loadSnapshot(ctx.db, [serverId]), tenantId);
  const draft = compileBundle(snap, { fleetId: "draft", revision: 0, parentRevision: null, createdAt: new Date().toISOString() });
  const tests = runTests(draft.content, snap.tests, draft.issues.length === 0);
  return { issues: draft.issues, warnings: draft.warnings, tests, passed: tests.filter((t) => t.passed).length, failed: tests.filter((t) => !t.passed).length };
}

/**
 * Decides one request against a published revision or the server's current
 * draft, as an agent would: with `decide()` (lib/enforcement/decide.ts), so
 * revocations, client approval and drift count, read fresh from the database
 * (live state is never rolled back: a published revision is simulated with
 * today's revocations and approvals).
 */
export async function simulate(ctx: Ctx, input: z.infer<typeof simulateInput>) {
  await authorize(ctx, input.tenantId, input.serverId, false);
  if (input.fleetId && input.revision) {
    const b = await getBundle(ctx, input.fleetId, input.revision);
    const { content, live } = await decisionInputs(ctx.db, b.content);
    return explain(content, input, live);
  }
  return simulateDraft(ctx, input);
}

/** Decides one request against the server's current draft, with the Cedar of the policies that determined it. */
export async function simulateDraft(ctx: Ctx, input: z.infer<typeof simulateInput>) {
  await authorize(ctx, input.tenantId, input.serverId, false);
  const snap = visibleDraft(ctx, await loadSnapshot(ctx.db, [input.serverId]), input.tenantId);
  const draft = compileBundle(snap, { fleetId: "draft", revision: 0, parentRevision: null, createdAt: new Date().toISOString() });
  if (draft.issues.length) return { decision: null, issues: draft.issues };
  const { content, live } = await decisionInputs(ctx.db, draft.content);
  return explain(content, input, live);
}

/** Decides with `decide()` and attaches names and Cedar of the determining policies. */
export function explain(content: BundleContent, input: z.infer<typeof simulateInput>, live: LiveState = {}) {
  const r = input.request;
  const time = r.time ? new Date(r.time) : new Date();
  const iat = input.issuedAt ? Math.floor(Date.parse(input.issuedAt) / 1000) : 0;
  const result = decide(
    decisionView(content),
    {
      method: METHOD_OF[r.action],
      serverId: input.serverId,
      name: r.tool,
      principal: { issuer: input.issuer ?? "", tenantId: input.tenantId, user: r.user, client: r.client, scopes: r.scopes, groups: r.groups, actors: [], iat, exp: 0 },
      args: r.args,
      time,
    },
    live,
  );
  const describe = (id: string) => ({ id, name: content.policies[id]?.name ?? id, kind: content.policies[id]?.kind ?? "builtin", cedar: content.cedar.policies[id] ?? "" });
  return { ...result, determiningPolicies: result.determining.map(describe), erroredPolicies: result.errors.map(describe), issues: [] };
}
