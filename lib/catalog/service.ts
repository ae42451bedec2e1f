import { and, asc, count, desc, eq, ilike, inArray, sql, type SQL } from "drizzle-orm";
import { z } from "zod";
import type { Db } from "@/db/client";
import { catalogueKinds, riskLevels, servers, toolVersions, tools, type Tool, type ToolVersion } from "@/db/schema";
import type { Ctx } from "@/lib/context";
import { isUniqueViolation } from "@/lib/db-errors";
import { toolHash, type ToolDefinition } from "@/lib/enforcement/tool-hash";
import { AppError, notFound } from "@/lib/errors";
import { newId } from "@/lib/ids";
import { likePattern, offsetOf, pageQuery, type Page } from "@/lib/pagination";
import { loadServer } from "@/lib/servers/service";
import { recordEvent } from "@/lib/trail/record";
import { diffToolVersions, renderToolVersion } from "./diff";
import { fetchUpstreamCatalogue, type FetchLike, type UpstreamCatalogue } from "@/lib/enforcement/upstream-tools";
import { entryHash, MAX_ENTRY_KEY, promptInputSchema, type CatalogueKind, type PromptDefinition } from "@/lib/enforcement/catalogue-entry";
import { redactUrl } from "@/lib/enforcement/redact";
import type { Kek } from "@/lib/bundles/signing";
import { getEnv } from "@/lib/env";
import { openUpstreamCredential, placeUpstreamCredential } from "@/lib/vault/upstream-auth";
import { createEgressFetch } from "@/lib/net/egress";
import { egressPolicy } from "@/lib/net/policy";

// A tool listing page is JSON or one SSE message; 2,000 tools with schemas stay far below this.
const IMPORT_MAX_BYTES = 8 * 1024 * 1024;

export const toolNameSchema = z.string().regex(/^[A-Za-z0-9_.-]{1,128}$/, "must be 1–128 letters, digits, '_', '-' or '.'");
const jsonObject = z.record(z.string(), z.unknown());
const boundedJson = (max: number) => jsonObject.refine((v) => JSON.stringify(v).length <= max, `must be at most ${max / 1024} KiB of JSON`);

export const toolDefinitionSchema = z.object({
  name: toolNameSchema,
  title: z.string().max(200).nullish(),
  description: z.string().max(10_000).default(""),
  inputSchema: boundedJson(64 * 1024).refine((s) => s.type === "object", 'must be a JSON Schema with type "object"'),
  outputSchema: boundedJson(64 * 1024).nullish(),
  annotations: boundedJson(8 * 1024).default({}),
});

export const addToolInput = toolDefinitionSchema.extend({ risk: z.enum(riskLevels).default("unrated") });
export const updateToolInput = z.object({ risk: z.enum(riskLevels).optional() }).refine((v) => Object.keys(v).length > 0, "nothing to change");
export const approveToolInput = z.object({ versionId: z.string().describe("The version reviewed; must still be the latest") });
export const blockToolInput = z.object({ reason: z.string().trim().min(3, "say why (at least 3 characters)").max(500) });

// Resources, resource templates and prompts as an upstream lists them (bounded like tools).
const controlFree = (v: string) => {
  for (let i = 0; i < v.length; i++) {
    const c = v.charCodeAt(i);
    if (c < 0x20 || c === 0x7f) return false;
  }
  return true;
};
// Bounded in bytes too: the key is in a btree index (a row of more than ~2.7 kB could not be stored).
const oneLine = (max: number) =>
  z
    .string()
    .min(1)
    .max(max)
    .refine(controlFree, "must be one line without control characters")
    .refine((v) => Buffer.byteLength(v, "utf8") <= max, `must be at most ${max} bytes of UTF-8`);
export const resourceDefinitionSchema = z.object({
  uri: oneLine(MAX_ENTRY_KEY),
  name: z.string().max(200).default(""),
  title: z.string().max(200).nullish(),
  description: z.string().max(10_000).nullish(),
  mimeType: z.string().max(200).nullish(),
  annotations: boundedJson(8 * 1024).nullish(),
});
export const resourceTemplateDefinitionSchema = resourceDefinitionSchema.omit({ uri: true }).extend({ uriTemplate: oneLine(MAX_ENTRY_KEY) });
export const promptDefinitionSchema = z.object({
  name: oneLine(200),
  title: z.string().max(200).nullish(),
  description: z.string().max(10_000).nullish(),
  arguments: z
    .array(
      z.object({
        name: z.string().regex(/^[A-Za-z0-9_.-]{1,128}$/, "must be 1–128 letters, digits, '_', '-' or '.'"),
        title: z.string().max(200).nullish(),
        description: z.string().max(2_000).nullish(),
        required: z.boolean().nullish(),
      }),
    )
    .max(50)
    .nullish(),
});

export const toolStatuses = ["approved", "new", "changed", "blocked"] as const;
export type ToolStatus = (typeof toolStatuses)[number];
export const toolListQuery = pageQuery.extend({
  status: z.enum(toolStatuses).optional(),
  kind: z.enum(catalogueKinds).default("tool").describe("Which catalogue: tools (default), resources, resource templates or prompts"),
});

/** approved: the latest version is the approved one; new/changed: pending review. */
export function toolStatus(t: Pick<Tool, "blocked" | "approvedVersionId" | "latestVersionId">): ToolStatus {
  if (t.blocked) return "blocked";
  if (!t.approvedVersionId) return "new";
  return t.approvedVersionId === t.latestVersionId ? "approved" : "changed";
}

function publicVersion(v: ToolVersion) {
  return {
    id: v.id,
    version: v.version,
    title: v.title,
    description: v.description,
    inputSchema: v.inputSchema,
    outputSchema: v.outputSchema,
    annotations: v.annotations,
    definition: v.definition ?? null,
    hash: v.hash,
    source: v.source,
    createdAt: v.createdAt.toISOString(),
    approvedAt: v.approvedAt?.toISOString() ?? null,
    approvedBy: v.approvedBy,
  };
}

function publicTool(t: Tool, latest: ToolVersion, approved: ToolVersion | undefined) {
  return {
    id: t.id,
    serverId: t.serverId,
    kind: t.kind,
    name: t.name,
    status: toolStatus(t),
    risk: t.risk,
    blocked: t.blocked,
    blockedReason: t.blockedReason,
    removedUpstream: t.removedUpstream,
    title: (approved ?? latest).title,
    description: (approved ?? latest).description,
    annotations: (approved ?? latest).annotations,
    approvedVersion: approved ? publicVersion(approved) : null,
    latestVersion: publicVersion(latest),
    updatedAt: t.updatedAt.toISOString(),
  };
}
export type PublicTool = ReturnType<typeof publicTool>;

async function versionsById(db: Db, ids: string[]) {
  if (ids.length === 0) return new Map<string, ToolVersion>();
  const rows = await db.select().from(toolVersions).where(inArray(toolVersions.id, ids));
  return new Map(rows.map((r) => [r.id, r]));
}

async function loadTool(ctx: Ctx, toolId: string, perm: "servers.read" | "catalog.write" | "catalog.approve") {
  const [tool] = await ctx.db.select().from(tools).where(eq(tools.id, toolId));
  if (!tool) throw notFound("Tool");
  const loaded = await loadServer(ctx, tool.serverId, perm).catch((err: unknown) => {
    // The tool of a server the actor cannot see does not exist for it either.
    if (err instanceof AppError && err.code === "not_found") throw notFound("Tool");
    throw err;
  });
  return { tool, loaded };
}

export async function listTools(ctx: Ctx, serverId: string, q: z.infer<typeof toolListQuery>): Promise<Page<PublicTool>> {
  const { server } = await loadServer(ctx, serverId, "servers.read");
  const filters: SQL[] = [eq(tools.serverId, server.id), eq(tools.kind, q.kind ?? "tool")];
  if (q.q) filters.push(ilike(tools.name, likePattern(q.q)));
  if (q.status === "blocked") filters.push(eq(tools.blocked, true));
  if (q.status === "new") filters.push(sql`not ${tools.blocked} and ${tools.approvedVersionId} is null`);
  if (q.status === "changed") filters.push(sql`not ${tools.blocked} and ${tools.approvedVersionId} <> ${tools.latestVersionId}`);
  if (q.status === "approved") filters.push(sql`not ${tools.blocked} and ${tools.approvedVersionId} = ${tools.latestVersionId}`);
  const where = and(...filters);
  const [rows, [total]] = await Promise.all([
    ctx.db.select().from(tools).where(where).orderBy(asc(tools.name)).limit(q.pageSize).offset(offsetOf(q)),
    ctx.db.select({ n: count() }).from(tools).where(where),
  ]);
  const versions = await versionsById(
    ctx.db,
    rows.flatMap((t) => [t.latestVersionId, ...(t.approvedVersionId ? [t.approvedVersionId] : [])]),
  );
  return {
    items: rows.map((t) => publicTool(t, versions.get(t.latestVersionId)!, t.approvedVersionId ? versions.get(t.approvedVersionId) : undefined)),
    total: total?.n ?? 0,
    page: q.page,
    pageSize: q.pageSize,
  };
}

/** Versions of a tool's history one answer carries (an upstream that keeps changing a tool adds a version each time). */
export const TOOL_HISTORY_PAGE = 20;
export const toolVersionListQuery = z.object({
  page: z.coerce.number().int().min(1).max(10_000).default(1),
  pageSize: z.coerce.number().int().min(1).max(50).default(TOOL_HISTORY_PAGE),
});

// A version's summary: no definition, only its size (bytes of the definition as JSON text).
const versionSummaryColumns = {
  id: toolVersions.id,
  version: toolVersions.version,
  hash: toolVersions.hash,
  source: toolVersions.source,
  createdAt: toolVersions.createdAt,
  approvedAt: toolVersions.approvedAt,
  approvedBy: toolVersions.approvedBy,
  size: sql<number>`octet_length(jsonb_build_object('title', ${toolVersions.title}, 'description', ${toolVersions.description}, 'inputSchema', ${toolVersions.inputSchema}, 'outputSchema', ${toolVersions.outputSchema}, 'annotations', ${toolVersions.annotations})::text)`.mapWith(
    Number,
  ),
};
type VersionSummaryRow = { id: string; version: number; hash: string; source: "import" | "manual"; createdAt: Date; approvedAt: Date | null; approvedBy: string | null; size: number };
const publicSummary = (v: VersionSummaryRow) => ({ ...v, createdAt: v.createdAt.toISOString(), approvedAt: v.approvedAt?.toISOString() ?? null });
export type ToolVersionSummary = ReturnType<typeof publicSummary>;

async function versionPage(db: Db, toolId: string, q: z.infer<typeof toolVersionListQuery>): Promise<Page<ToolVersionSummary>> {
  const [rows, [total]] = await Promise.all([
    db
      .select(versionSummaryColumns)
      .from(toolVersions)
      .where(eq(toolVersions.toolId, toolId))
      .orderBy(desc(toolVersions.version))
      .limit(q.pageSize)
      .offset((q.page - 1) * q.pageSize),
    db.select({ n: count() }).from(toolVersions).where(eq(toolVersions.toolId, toolId)),
  ]);
  return { items: rows.map(publicSummary), total: total?.n ?? 0, page: q.page, pageSize: q.pageSize };
}

/**
 * A tool, the diff between its approved and latest versions, and the latest
 * page of its history as summaries. Only the two diffed versions come with
 * their definitions: the answer stays bounded however many versions an
 * upstream has produced (older ones: `listToolVersions`, `getToolVersion`).
 */
export async function getTool(ctx: Ctx, toolId: string) {
  const { tool } = await loadTool(ctx, toolId, "servers.read");
  const [byId, history] = await Promise.all([
    versionsById(ctx.db, [tool.latestVersionId, ...(tool.approvedVersionId ? [tool.approvedVersionId] : [])]),
    versionPage(ctx.db, tool.id, { page: 1, pageSize: TOOL_HISTORY_PAGE }),
  ]);
  const latest = byId.get(tool.latestVersionId)!;
  const approved = tool.approvedVersionId ? byId.get(tool.approvedVersionId) : undefined;
  // Bounded (lib/catalog/diff.ts): definitions come from upstreams, and any reader may open this.
  const d = approved && approved.id !== latest.id ? diffToolVersions(renderToolVersion(approved), renderToolVersion(latest)) : null;
  return { ...publicTool(tool, latest, approved), diff: d?.lines ?? null, diffTruncated: d?.truncated ?? null, history: history.items, historyTotal: history.total };
}

/** A page of a tool's version history, newest first, as summaries. */
export async function listToolVersions(ctx: Ctx, toolId: string, q: z.infer<typeof toolVersionListQuery>) {
  const { tool } = await loadTool(ctx, toolId, "servers.read");
  return versionPage(ctx.db, tool.id, q);
}

/** One version of a tool with its full definition (a version of another tool is not found). */
export async function getToolVersion(ctx: Ctx, toolId: string, versionId: string) {
  const { tool } = await loadTool(ctx, toolId, "servers.read");
  const [v] = await ctx.db
    .select()
    .from(toolVersions)
    .where(and(eq(toolVersions.id, versionId), eq(toolVersions.toolId, tool.id)));
  if (!v) throw notFound("Tool version");
  return publicVersion(v);
}

async function insertVersion(db: Db, toolId: string, version: number, def: ToolDefinition | ListedEntry, source: "import" | "manual", by: string, approve: boolean, id: string = newId("toolVersion")) {
  const now = new Date();
  const entry = "kind" in def ? def : null;
  await db.insert(toolVersions).values({
    id,
    toolId,
    version,
    title: entry ? entry.title : ((def as ToolDefinition).title ?? null),
    description: entry ? entry.description : ((def as ToolDefinition).description ?? ""),
    inputSchema: entry ? entry.inputSchema : (def as ToolDefinition).inputSchema,
    outputSchema: entry ? null : ((def as ToolDefinition).outputSchema ?? null),
    annotations: entry ? entry.annotations : ((def as ToolDefinition).annotations ?? {}),
    definition: entry ? entry.definition : null,
    hash: entry ? entry.hash : toolHash(def as ToolDefinition),
    source,
    createdBy: by,
    ...(approve ? { approvedAt: now, approvedBy: by } : {}),
  });
  return id;
}

/** Adds a tool by hand; the admin wrote it, so its first version is approved. */
export async function addTool(ctx: Ctx, serverId: string, input: z.infer<typeof addToolInput>) {
  const { server } = await loadServer(ctx, serverId, "catalog.write");
  const toolId = newId("tool");
  try {
    await ctx.db.transaction(async (tx) => {
      const { risk, ...def } = input;
      // The tool row first: its versions reference it (tools.latest_version_id has no foreign key).
      const versionId = newId("toolVersion");
      await tx.insert(tools).values({ id: toolId, serverId: server.id, name: def.name, risk, approvedVersionId: versionId, latestVersionId: versionId });
      await insertVersion(tx, toolId, 1, def, "manual", ctx.actor.label, true, versionId);
      await recordEvent(tx, ctx.actor, { action: "tool.add", targetType: "tool", targetId: toolId, tenantId: server.tenantId, after: { server: server.id, ...def, risk } });
    });
  } catch (err) {
    if (isUniqueViolation(err)) throw new AppError("conflict", `The server already has a tool named ${input.name}`, [{ path: "name", message: "already exists" }]);
    throw err;
  }
  return getTool(ctx, toolId);
}

export interface KindSummary {
  added: string[];
  changed: string[];
  unchanged: string[];
  removed: string[];
  skipped: { name: string; reason: string }[];
}

/** Tools at the top level (as before); resources, resource templates and prompts in `entries`. */
export interface ImportSummary extends KindSummary {
  entries: Record<Exclude<CatalogueKind, "tool">, KindSummary>;
}

/** A resource, template or prompt ready to be stored as a version (hash over the listed definition). */
interface ListedEntry {
  kind: Exclude<CatalogueKind, "tool">;
  key: string;
  title: string | null;
  description: string;
  inputSchema: Record<string, unknown>;
  annotations: Record<string, unknown>;
  definition: Record<string, unknown>;
  hash: string;
}

/** Validates what an upstream lists of one kind: each entry's key, bounds, and duplicates. */
function listedEntries(kind: Exclude<CatalogueKind, "tool">, items: unknown[], summary: KindSummary): ListedEntry[] {
  const out: ListedEntry[] = [];
  const seen = new Set<string>();
  for (const item of items) {
    const o = (item ?? {}) as Record<string, unknown>;
    const raw = kind === "resource" ? o.uri : kind === "resourceTemplate" ? o.uriTemplate : o.name;
    const parsed =
      kind === "resource" ? resourceDefinitionSchema.safeParse(item) : kind === "resourceTemplate" ? resourceTemplateDefinitionSchema.safeParse(item) : promptDefinitionSchema.safeParse(item);
    if (!parsed.success) {
      summary.skipped.push({ name: String(raw).slice(0, 200), reason: parsed.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ") });
      continue;
    }
    const def = parsed.data as Record<string, unknown>;
    const key = String(kind === "resource" ? def.uri : kind === "resourceTemplate" ? def.uriTemplate : def.name);
    if (seen.has(key)) {
      summary.skipped.push({ name: key.slice(0, 200), reason: "listed twice" });
      continue;
    }
    seen.add(key);
    out.push({
      kind,
      key,
      title: typeof def.title === "string" ? def.title : null,
      description: typeof def.description === "string" ? def.description : "",
      inputSchema: kind === "prompt" ? promptInputSchema(def as unknown as PromptDefinition) : { type: "object" },
      annotations: def.annotations && typeof def.annotations === "object" ? (def.annotations as Record<string, unknown>) : {},
      definition: def,
      hash: entryHash(kind, def),
    });
  }
  return out;
}

const emptySummary = (): KindSummary => ({ added: [], changed: [], unchanged: [], removed: [], skipped: [] });

/**
 * Lists the upstream's tools as the catalogue import and drift checks see
 * them: through the egress guard (a tenant admin chooses this URL, so it must
 * not reach internal addresses), with the owning tenant's vault entry placed
 * as the agent places it (lib/vault/upstream-auth.ts; its read is audited).
 * A 401/403 is reported as the credential's problem, naming the entry, or
 * asking for one when the vault has none; never with the upstream's body.
 */
async function listWithVaultCredential(ctx: Ctx, server: { id: string; tenantId: string; upstreamUrl: string }, keyring: () => readonly Kek[]): Promise<UpstreamCatalogue> {
  const egress = createEgressFetch({ policy: egressPolicy(), timeoutMs: 20_000, maxBytes: IMPORT_MAX_BYTES });
  const cred = await openUpstreamCredential(ctx.db, ctx.actor, server, keyring, "catalog.import");
  const auth = cred ? await placeUpstreamCredential(cred, server.upstreamUrl, egress) : null;
  // The status the upstream refused with, seen on the wire (the lister's own message only says "HTTP 401").
  let refused: number | undefined;
  const watching: FetchLike = async (u, init) => {
    const res = await egress(u, init);
    if (res.status === 401 || res.status === 403) refused ??= res.status;
    return res;
  };
  try {
    return await fetchUpstreamCatalogue(auth?.url ?? server.upstreamUrl, { fetch: watching, headers: auth?.headers ?? {} });
  } catch (err) {
    if (refused === undefined) throw err;
    const shown = redactUrl(server.upstreamUrl);
    if (auth) throw new AppError("upstream_error", `The upstream refused the credential of the vault entry "${auth.entryName}" (HTTP ${refused} from ${shown}): check or rotate that vault entry`);
    throw new AppError(
      "upstream_error",
      `The upstream requires a credential (HTTP ${refused} from ${shown}): store the upstream credential in the vault for this server (the owning tenant's entry or a shared one), then import again`,
    );
  }
}

/**
 * Imports the live catalogue: tools, resources, resource templates and
 * prompts (each list the upstream's capabilities announce), over one
 * connection with the vault credential. New entries and changed definitions
 * become new versions pending review; the approved version stays the
 * catalogue until an admin approves. Entries gone upstream are flagged, not
 * deleted.
 */
export async function importCatalog(ctx: Ctx, serverId: string, keyring: () => readonly Kek[] = () => getEnv().keyring): Promise<ImportSummary> {
  const { server } = await loadServer(ctx, serverId, "catalog.write");
  let listing: UpstreamCatalogue;
  try {
    listing = await listWithVaultCredential(ctx, server, keyring);
  } catch (err) {
    const message = err instanceof AppError ? err.message : "Import failed";
    await ctx.db.update(servers).set({ lastImportError: message }).where(eq(servers.id, server.id));
    throw err;
  }
  const upstream = listing.tools;
  const summary: ImportSummary = { ...emptySummary(), entries: { resource: emptySummary(), resourceTemplate: emptySummary(), prompt: emptySummary() } };
  const others = [
    ...listedEntries("resource", listing.resources, summary.entries.resource),
    ...listedEntries("resourceTemplate", listing.resourceTemplates, summary.entries.resourceTemplate),
    ...listedEntries("prompt", listing.prompts, summary.entries.prompt),
  ];
  const valid: ToolDefinition[] = [];
  const seen = new Set<string>();
  for (const t of upstream) {
    const parsed = toolDefinitionSchema.safeParse(t);
    if (!parsed.success) summary.skipped.push({ name: String(t.name).slice(0, 128), reason: parsed.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ") });
    else if (seen.has(parsed.data.name)) summary.skipped.push({ name: parsed.data.name, reason: "listed twice" });
    else {
      seen.add(parsed.data.name);
      valid.push(parsed.data);
    }
  }

  await ctx.db.transaction(async (tx) => {
    const all = await tx.select().from(tools).where(eq(tools.serverId, server.id)).for("update");
    const existing = all.filter((t) => t.kind === "tool");
    const byName = new Map(existing.map((t) => [t.name, t]));
    const latest = await versionsById(
      tx,
      existing.map((t) => t.latestVersionId),
    );
    const now = new Date();
    for (const def of valid) {
      const cur = byName.get(def.name);
      if (!cur) {
        const toolId = newId("tool");
        const versionId = newId("toolVersion");
        await tx.insert(tools).values({ id: toolId, serverId: server.id, name: def.name, latestVersionId: versionId });
        await insertVersion(tx, toolId, 1, def, "import", ctx.actor.label, false, versionId);
        summary.added.push(def.name);
        continue;
      }
      const last = latest.get(cur.latestVersionId)!;
      if (last.hash === toolHash(def)) {
        if (cur.removedUpstream) await tx.update(tools).set({ removedUpstream: false, updatedAt: now }).where(eq(tools.id, cur.id));
        summary.unchanged.push(def.name);
        continue;
      }
      const versionId = await insertVersion(tx, cur.id, last.version + 1, def, "import", ctx.actor.label, false);
      await tx.update(tools).set({ latestVersionId: versionId, removedUpstream: false, updatedAt: now }).where(eq(tools.id, cur.id));
      summary.changed.push(def.name);
    }
    for (const t of existing) {
      if (!seen.has(t.name) && !t.removedUpstream) {
        await tx.update(tools).set({ removedUpstream: true, updatedAt: now }).where(eq(tools.id, t.id));
        summary.removed.push(t.name);
      }
    }
    // Resources, templates and prompts: the same steps, per kind (a tool and a prompt may share a name).
    const rows = all.filter((t) => t.kind !== "tool");
    const rowOf = new Map(rows.map((t) => [`${t.kind}\u0000${t.name}`, t]));
    const latestOther = await versionsById(
      tx,
      rows.map((t) => t.latestVersionId),
    );
    const listed = new Set<string>();
    for (const e of others) {
      const part = summary.entries[e.kind];
      const k = `${e.kind}\u0000${e.key}`;
      listed.add(k);
      const cur = rowOf.get(k);
      if (!cur) {
        const toolId = newId("tool");
        const versionId = newId("toolVersion");
        await tx.insert(tools).values({ id: toolId, serverId: server.id, kind: e.kind, name: e.key, latestVersionId: versionId });
        await insertVersion(tx, toolId, 1, e, "import", ctx.actor.label, false, versionId);
        part.added.push(e.key);
        continue;
      }
      const last = latestOther.get(cur.latestVersionId)!;
      if (last.hash === e.hash) {
        if (cur.removedUpstream) await tx.update(tools).set({ removedUpstream: false, updatedAt: now }).where(eq(tools.id, cur.id));
        part.unchanged.push(e.key);
        continue;
      }
      const versionId = await insertVersion(tx, cur.id, last.version + 1, e, "import", ctx.actor.label, false);
      await tx.update(tools).set({ latestVersionId: versionId, removedUpstream: false, updatedAt: now }).where(eq(tools.id, cur.id));
      part.changed.push(e.key);
    }
    for (const t of rows) {
      if (!listed.has(`${t.kind}\u0000${t.name}`) && !t.removedUpstream) {
        await tx.update(tools).set({ removedUpstream: true, updatedAt: now }).where(eq(tools.id, t.id));
        summary.entries[t.kind as Exclude<CatalogueKind, "tool">].removed.push(t.name);
      }
    }
    await tx.update(servers).set({ lastImportAt: now, lastImportError: null }).where(eq(servers.id, server.id));
    await recordEvent(tx, ctx.actor, { action: "catalog.import", targetType: "server", targetId: server.id, tenantId: server.tenantId, after: summary });
  });
  return summary;
}

/** Approves the latest version, which must be the one the admin reviewed. */
export async function approveTool(ctx: Ctx, toolId: string, input: z.infer<typeof approveToolInput>) {
  const { tool, loaded } = await loadTool(ctx, toolId, "catalog.approve");
  if (input.versionId !== tool.latestVersionId) {
    throw new AppError("conflict", "The tool changed since you reviewed it; review the latest version", [{ path: "versionId", message: "is not the latest version" }]);
  }
  if (tool.approvedVersionId === tool.latestVersionId) throw new AppError("conflict", "This version is already approved");
  await ctx.db.transaction(async (tx) => {
    const now = new Date();
    await tx.update(toolVersions).set({ approvedAt: now, approvedBy: ctx.actor.label }).where(eq(toolVersions.id, tool.latestVersionId));
    const n = await tx
      .update(tools)
      .set({ approvedVersionId: tool.latestVersionId, updatedAt: now })
      .where(and(eq(tools.id, tool.id), eq(tools.latestVersionId, input.versionId)))
      .returning({ id: tools.id });
    if (n.length !== 1) throw new AppError("conflict", "The tool changed while approving; review it again");
    await recordEvent(tx, ctx.actor, {
      action: "tool.approve",
      targetType: "tool",
      targetId: tool.id,
      tenantId: loaded.server.tenantId,
      before: { approvedVersionId: tool.approvedVersionId },
      after: { approvedVersionId: tool.latestVersionId },
    });
  });
  return getTool(ctx, tool.id);
}

async function setToolFields(ctx: Ctx, toolId: string, action: string, patch: Partial<Pick<Tool, "risk" | "blocked" | "blockedReason">>) {
  const { tool, loaded } = await loadTool(ctx, toolId, "catalog.write");
  await ctx.db.transaction(async (tx) => {
    await tx
      .update(tools)
      .set({ ...patch, updatedAt: new Date() })
      .where(eq(tools.id, tool.id));
    const before = Object.fromEntries(Object.keys(patch).map((k) => [k, tool[k as keyof typeof patch]]));
    await recordEvent(tx, ctx.actor, { action, targetType: "tool", targetId: tool.id, tenantId: loaded.server.tenantId, before, after: patch });
  });
  return getTool(ctx, tool.id);
}

export const updateTool = (ctx: Ctx, toolId: string, input: z.infer<typeof updateToolInput>) => setToolFields(ctx, toolId, "tool.update", input);

export async function blockTool(ctx: Ctx, toolId: string, input: z.infer<typeof blockToolInput>) {
  return setToolFields(ctx, toolId, "tool.block", { blocked: true, blockedReason: input.reason });
}

export async function unblockTool(ctx: Ctx, toolId: string) {
  return setToolFields(ctx, toolId, "tool.unblock", { blocked: false, blockedReason: null });
}
