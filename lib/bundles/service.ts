import { and, desc, eq, sql } from "drizzle-orm";
import { z } from "zod";
import type { Db } from "@/db/client";
import { bundles, fleetServers, fleets, type Bundle, type Fleet } from "@/db/schema";
import { seesAllTenants } from "@/lib/auth/permissions";
import type { Ctx } from "@/lib/context";
import { contentHash, type BundleContent, type SignedBundle } from "@/lib/enforcement/bundle";
import { AppError, forbidden, notFound, type FieldIssue } from "@/lib/errors";
import { newId } from "@/lib/ids";
import { recordEvent } from "@/lib/trail/record";
import { compileBundle } from "./compile";
import { conversionStoreEnabled, loadConversions, saveConversions } from "./conversions";
import { diffBundles } from "./diff";
import { activeSigningKey, signPayload, type Kek } from "./signing";
import { loadSnapshot } from "./snapshot";
import { refreshLive, republishLive, restrictToServers } from "./live";
import { scopeByTenant, type ScopedResult } from "./scoped";
import type { Actor } from "@/lib/auth/permissions";

export const BUNDLE_CHANNEL = "mandate_bundles";
export const publishInput = z.object({ note: z.string().trim().max(500).default("") });

function canSeeFleets(ctx: Ctx) {
  if (!seesAllTenants(ctx.actor)) throw forbidden("Only owners and auditors manage bundles");
}

async function loadFleet(db: Db, fleetId: string, lock = false): Promise<Fleet> {
  const q = db.select().from(fleets).where(eq(fleets.id, fleetId));
  const [fleet] = lock ? await q.for("update") : await q;
  if (!fleet) throw notFound("Fleet");
  return fleet;
}

async function fleetServerIds(db: Db, fleetId: string) {
  return (await db.select({ id: fleetServers.serverId }).from(fleetServers).where(eq(fleetServers.fleetId, fleetId))).map((r) => r.id);
}

async function bundleAt(db: Db, fleetId: string, revision: number | null): Promise<Bundle | undefined> {
  if (revision === null) return undefined;
  const [b] = await db
    .select()
    .from(bundles)
    .where(and(eq(bundles.fleetId, fleetId), eq(bundles.revision, revision)));
  return b;
}

/**
 * Compiles the fleet's draft: the next revision as it would be published now.
 * A tenant whose own policy or test fails is held at the live revision
 * (lib/bundles/scoped.ts) instead of blocking every other tenant.
 */
async function compileDraft(db: Db, fleet: Fleet): Promise<ScopedResult & { revision: number }> {
  const revision = (await latestRevision(db, fleet.id)) + 1;
  const snap = await loadSnapshot(db, await fleetServerIds(db, fleet.id));
  const live = await bundleAt(db, fleet.id, fleet.activeRevision);
  // The fleet's stored Cedar conversions: the first compile of a process reads them instead of converting every policy again.
  const store = conversionStoreEnabled() ? await loadConversions(db, fleet.id) : undefined;
  const draft = compileBundle(snap, { fleetId: fleet.id, revision, parentRevision: fleet.activeRevision, createdAt: new Date().toISOString() }, { store });
  if (store) await saveConversions(db, fleet.id, store);
  return { revision, ...scopeByTenant(draft, snap, (live?.content as unknown as BundleContent) ?? null) };
}

async function latestRevision(db: Db, fleetId: string): Promise<number> {
  const [r] = await db
    .select({ max: sql<number | null>`max(${bundles.revision})` })
    .from(bundles)
    .where(eq(bundles.fleetId, fleetId));
  return Number(r?.max ?? 0);
}

/** Every reason a draft cannot be published, as field issues the API returns together. */
function blockers(r: ScopedResult): FieldIssue[] {
  return [
    ...r.issues.map((i) => ({
      path: i.policy ? `policies.${i.policy.id}` : "bundle",
      message: `${i.policy ? `${i.policy.name}: ` : ""}${i.message}${i.line ? ` (line ${i.line}, column ${i.column})` : ""}`,
    })),
    ...r.tests
      .filter((t) => !t.passed)
      .map((t) => ({ path: `tests.${t.id}`, message: `test "${t.name}" expected ${t.expected}, got ${t.actual === "not_run" ? "no result (fix the errors above)" : t.actual}` })),
  ];
}

/** The draft of a fleet: issues, test results and the diff against what is live. */
export async function draftBundle(ctx: Ctx, fleetId: string) {
  canSeeFleets(ctx);
  const fleet = await loadFleet(ctx.db, fleetId);
  const draft = await compileDraft(ctx.db, fleet);
  const live = await bundleAt(ctx.db, fleet.id, fleet.activeRevision);
  return {
    fleetId: fleet.id,
    revision: draft.revision,
    activeRevision: fleet.activeRevision,
    issues: draft.issues,
    warnings: draft.warnings,
    tests: draft.tests,
    blockers: blockers(draft),
    heldBack: draft.heldBack,
    diff: diffBundles((live?.content as unknown as BundleContent) ?? null, draft.content),
    content: draft.content,
  };
}

async function insertRevision(db: Db, createdBy: string, kek: Kek, fleet: Fleet, content: BundleContent, extra: { note: string; rolledBackFrom?: number }) {
  const key = await activeSigningKey(db, kek);
  const sha256 = contentHash(content);
  const signature = await signPayload(key, { sha256, fleetId: fleet.id, revision: content.manifest.revision });
  const [row] = await db
    .insert(bundles)
    .values({
      id: newId("bundle"),
      fleetId: fleet.id,
      revision: content.manifest.revision,
      parentRevision: content.manifest.parentRevision,
      sha256,
      content: content as unknown as Record<string, unknown>,
      signature,
      keyId: key.kid,
      note: extra.note,
      rolledBackFrom: extra.rolledBackFrom ?? null,
      createdBy,
    })
    .returning();
  await db.update(fleets).set({ activeRevision: content.manifest.revision, updatedAt: new Date() }).where(eq(fleets.id, fleet.id));
  // Delivered on commit to every control-plane process listening (long polls wake).
  await db.execute(sql`select pg_notify(${BUNDLE_CHANNEL}, ${`${fleet.id}:${content.manifest.revision}`})`);
  return row!;
}

/** Publishes the fleet's draft. Any compile error or failing test blocks it, all reported at once. */
export async function publishBundle(ctx: Ctx, fleetId: string, input: z.infer<typeof publishInput>, kek: Kek) {
  if (ctx.actor.globalRole !== "owner") throw forbidden("Only owners publish bundles");
  return ctx.db.transaction(async (tx) => {
    const fleet = await loadFleet(tx, fleetId, true);
    const draft = await compileDraft(tx, fleet);
    const problems = blockers(draft);
    if (problems.length) throw new AppError("validation_failed", `Publishing is blocked by ${problems.length} problem${problems.length > 1 ? "s" : ""}`, problems);
    const row = await insertRevision(tx, ctx.actor.label, kek, fleet, draft.content, { note: input.note });
    const heldBack = draft.heldBack.map((h) => ({ tenantId: h.tenantId, problems: h.problems }));
    await recordEvent(tx, ctx.actor, {
      action: "bundle.publish",
      targetType: "fleet",
      targetId: fleet.id,
      tenantId: null,
      before: { revision: fleet.activeRevision },
      after: { revision: row.revision, sha256: row.sha256, note: input.note, ...(heldBack.length ? { heldBack } : {}) },
    });
    return { ...summary(row), heldBack };
  });
}

/**
 * Rolls back the decision rules of a fleet: a new revision whose policies,
 * scope mappings and catalogue are those of `toRevision`. Nothing else goes
 * back (issue 10, defect 3; design rule 8): the servers (upstream, resource
 * URI, trust) stay as published now, each admits only tenants it still
 * admits, and the live sections (revocations, client approval, credential
 * versions, masking) are read fresh by the function every live republish uses.
 */
export async function rollbackBundle(ctx: Ctx, fleetId: string, toRevision: number, kek: Kek) {
  if (ctx.actor.globalRole !== "owner") throw forbidden("Only owners roll back bundles");
  return ctx.db.transaction(async (tx) => {
    const fleet = await loadFleet(tx, fleetId, true);
    const old = await bundleAt(tx, fleet.id, toRevision);
    if (!old) throw notFound(`Revision ${toRevision}`);
    if (fleet.activeRevision === toRevision) throw new AppError("conflict", `Revision ${toRevision} is already live`);
    const revision = (await latestRevision(tx, fleet.id)) + 1;
    const prev = old.content as unknown as BundleContent;
    const current = ((await bundleAt(tx, fleet.id, fleet.activeRevision))?.content as unknown as BundleContent | undefined) ?? prev;
    // The decision rules of the old revision, for the servers published now.
    const rules = restrictToServers({ ...current, catalogue: prev.catalogue, cedar: prev.cedar, policies: prev.policies }, new Set(current.servers.map((s) => s.id)));
    const fresh = await refreshLive(tx, rules, await fleetServerIds(tx, fleet.id));
    const content: BundleContent = { ...fresh, manifest: { ...current.manifest, revision, parentRevision: fleet.activeRevision, createdAt: new Date().toISOString() } };
    const row = await insertRevision(tx, ctx.actor.label, kek, fleet, content, { note: `rollback to revision ${toRevision}`, rolledBackFrom: toRevision });
    await recordEvent(tx, ctx.actor, {
      action: "bundle.rollback",
      targetType: "fleet",
      targetId: fleet.id,
      tenantId: null,
      before: { revision: fleet.activeRevision },
      after: { revision, from: toRevision },
    });
    return summary(row);
  });
}

function summary(b: Bundle) {
  return {
    id: b.id,
    fleetId: b.fleetId,
    revision: b.revision,
    parentRevision: b.parentRevision,
    sha256: b.sha256,
    keyId: b.keyId,
    note: b.note,
    rolledBackFrom: b.rolledBackFrom,
    createdBy: b.createdBy,
    createdAt: b.createdAt.toISOString(),
  };
}

export async function listBundles(ctx: Ctx, fleetId: string) {
  canSeeFleets(ctx);
  const fleet = await loadFleet(ctx.db, fleetId);
  const rows = await ctx.db.select().from(bundles).where(eq(bundles.fleetId, fleet.id)).orderBy(desc(bundles.revision)).limit(200);
  return { activeRevision: fleet.activeRevision, items: rows.map(summary) };
}

export async function getBundle(ctx: Ctx, fleetId: string, revision: number): Promise<SignedBundle & ReturnType<typeof summary>> {
  canSeeFleets(ctx);
  const b = await bundleAt(ctx.db, (await loadFleet(ctx.db, fleetId)).id, revision);
  if (!b) throw notFound(`Revision ${revision}`);
  return { ...summary(b), signature: b.signature, content: b.content as unknown as BundleContent };
}

export async function diffRevisions(ctx: Ctx, fleetId: string, from: number, to: number) {
  const [a, b] = [await getBundle(ctx, fleetId, from), await getBundle(ctx, fleetId, to)];
  return { from, to, diff: diffBundles(a.content, b.content) };
}

/**
 * Republishes, with fresh live sections (revocations, client approval,
 * credential versions, masking), the live bundle of every fleet serving one of
 * `serverIds` (every fleet when null). Call inside the transaction that made
 * the change; agents' long polls wake on its commit.
 */
export function republishLiveBundles(db: Db, actor: Actor | "system", kek: Kek, serverIds: string[] | null, why: string) {
  return republishLive(db, actor, serverIds, why, (tx, fleet, content, extra) => insertRevision(tx, extra.createdBy, kek, fleet, content, { note: extra.note }));
}

/** The live bundle of a fleet, if one was published. */
export async function activeBundle(db: Db, fleetId: string): Promise<Bundle | undefined> {
  const [fleet] = await db.select().from(fleets).where(eq(fleets.id, fleetId));
  return fleet ? bundleAt(db, fleet.id, fleet.activeRevision) : undefined;
}
