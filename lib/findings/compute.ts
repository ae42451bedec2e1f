import "server-only";
import { createHash } from "node:crypto";
import { and, desc, eq, inArray, isNull, or } from "drizzle-orm";
import type { Db } from "@/db/client";
import { agents, enrollmentTokens, fleets, grants, oauthClients, scopeMappings, serverTenants, servers, tenants, tools, vaultEntries } from "@/db/schema";
import { lastScopeUseBefore, lastToolCallBefore, lastVaultResolve, usageSince, type UsageRow } from "./usage";

export const findingKinds = [
  "unused_scope_mapping",
  "uncalled_tool",
  "unused_grant",
  "unseen_client",
  "over_broad_user",
  "over_broad_client",
  "vault_rotation_due",
  "vault_never_rotated",
  "vault_unused",
  "agent_unseen",
  "enrollment_token_unused",
] as const;
export type FindingKind = (typeof findingKinds)[number];

/** Remedies that change what a bundle decides: they create a draft and show its impact before it is created. */
export const policyRemedies = ["narrow_mapping", "remove_from_mapping", "block_tool", "least_privilege_policy"] as const;
export type PolicyRemedy = (typeof policyRemedies)[number];
/** Remedies done by an existing service (its own API and dialog). */
export type DirectRemedy = "revoke_grant" | "revoke_client" | "rotate_vault" | "retire_vault" | "revoke_agent" | "revoke_enrollment_token";

export interface Remedy {
  action: PolicyRemedy | DirectRemedy;
  label: string;
  /** Goes through draft, tests, impact analysis and publish. */
  changesPolicy: boolean;
  /** The existing admin API call that does a direct remedy. */
  api?: { method: "POST" | "DELETE"; path: string; body?: Record<string, unknown> };
  /** The page where the remedy is done by hand (rotation needs the new secret). */
  href?: string;
}

export interface Finding {
  id: string;
  kind: FindingKind;
  /** The tenant the finding belongs to; null for the owners' fleet-wide findings (agents, enrollment tokens). */
  tenantId: string | null;
  tenantName: string | null;
  severity: "high" | "medium" | "low";
  title: string;
  detail: string;
  subject: { type: string; id: string; label: string; serverId?: string; serverName?: string; href?: string };
  evidence: {
    windowDays: number;
    since: string;
    /** Calls in the window that count for this finding (0 for an unused capability). */
    calls: number;
    lastUsedAt: string | null;
    /** Newest decisions behind the finding, to open in the decision log. */
    exampleDecisionIds: string[];
    /** Named lists: tools never used, tools used, and so on. */
    lists: Record<string, string[]>;
    counts: Record<string, number>;
  };
  remedies: Remedy[];
}

export interface TenantSettings {
  unusedDays: number;
  smallSharePercent: number;
}
export const DEFAULT_SETTINGS: TenantSettings = { unusedDays: 30, smallSharePercent: 25 };
/** A user or client must be allowed at least this many tools before "uses a small part" means anything. */
export const MIN_ALLOWED_FOR_SHARE = 3;
/** An unused enrollment token older than this is reported. */
const TOKEN_STALE_MS = 24 * 3600_000;
const MAX_EXAMPLES = 5;

export interface Score {
  tenantId: string;
  granted: number;
  used: number;
  /** used / granted in percent (100 when nothing is granted). */
  score: number;
  pairs: { granted: number; used: number };
  grants: { granted: number; used: number };
}

export interface ComputeResult {
  findings: Finding[];
  scores: Score[];
  truncated: boolean;
  tookMs: number;
}

/** A stable, opaque id for a finding: the same capability gives the same id on every computation. */
export const findingId = (key: string) => `fnd_${createHash("sha256").update(key).digest("hex").slice(0, 24)}`;

const iso = (d: Date | null | undefined) => (d ? d.toISOString() : null);
const seenAt = (...d: (Date | null | undefined)[]) => d.find((x): x is Date => x instanceof Date) ?? null;
const DAY = 86_400_000;
const ago = (d: Date | null, now: Date) => (d ? `${Math.max(0, Math.floor((now.getTime() - d.getTime()) / DAY))} days ago` : "never");
const newestIds = (ids: string[]) => [...new Set(ids)].sort().reverse().slice(0, MAX_EXAMPLES);

interface ServerInfo {
  id: string;
  name: string;
  owner: string;
  tenantIds: string[];
  mapping: Record<string, string[]>;
  mappingVersion: number;
  /** Approved, unblocked tools: the ones a scope can grant. */
  callable: Map<string, { id: string; risk: string }>;
}

/** Reads the servers these tenants may use, with their current mapping and callable tools. */
async function loadServers(db: Db, tenantIds: string[]): Promise<Map<string, ServerInfo>> {
  if (!tenantIds.length) return new Map();
  const shared = await db.select().from(serverTenants).where(inArray(serverTenants.tenantId, tenantIds));
  const rows = await db
    .select()
    .from(servers)
    .where(
      or(
        inArray(servers.tenantId, tenantIds),
        inArray(
          servers.id,
          shared.map((s) => s.serverId),
        ),
      ),
    );
  if (!rows.length) return new Map();
  const ids = rows.map((r) => r.id);
  const [access, toolRows, maps] = await Promise.all([
    db.select().from(serverTenants).where(inArray(serverTenants.serverId, ids)),
    db
      .select({ id: tools.id, serverId: tools.serverId, name: tools.name, risk: tools.risk, blocked: tools.blocked, approved: tools.approvedVersionId })
      .from(tools)
      .where(inArray(tools.serverId, ids)),
    db.select().from(scopeMappings).where(inArray(scopeMappings.serverId, ids)).orderBy(desc(scopeMappings.version)),
  ]);
  const out = new Map<string, ServerInfo>();
  for (const s of rows) {
    const m = maps.find((x) => x.serverId === s.id);
    const callable = new Map<string, { id: string; risk: string }>();
    for (const t of toolRows) if (t.serverId === s.id && t.approved && !t.blocked) callable.set(t.name, { id: t.id, risk: t.risk });
    out.set(s.id, {
      id: s.id,
      name: s.name,
      owner: s.tenantId,
      tenantIds: [s.tenantId, ...access.filter((a) => a.serverId === s.id && a.tenantId !== s.tenantId).map((a) => a.tenantId)],
      mapping: m?.mapping ?? {},
      mappingVersion: m?.version ?? 0,
      callable,
    });
  }
  return out;
}

/** Scope → the callable tools it grants on this server. */
function grantedPairs(s: ServerInfo): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const [scope, names] of Object.entries(s.mapping)) {
    const granted = [...new Set(names)].filter((n) => s.callable.has(n)).sort();
    if (granted.length) out.set(scope, granted);
  }
  return out;
}

const pairKey = (serverId: string, scope: string, tool: string) => `${serverId}\u0000${scope}\u0000${tool}`;

/**
 * Computes the least-privilege findings and privilege scores of these tenants
 * (and, with `global`, the owners' fleet-wide findings) from the decision log
 * and the registry as they stand at `now`. Read-only. The decision log is
 * read through its usage rollup (lib/findings/usage.ts); `raw: true` reads the
 * raw rows instead (the same answer: tests and bench/findings.ts compare).
 */
export async function computeFindings(db: Db, opts: { tenantIds: string[]; global: boolean; settings: Map<string, TenantSettings>; now?: Date; raw?: boolean }): Promise<ComputeResult> {
  const read = { raw: opts.raw };
  const t0 = performance.now();
  const now = opts.now ?? new Date();
  const settingsOf = (id: string | null) => opts.settings.get(id ?? "global") ?? DEFAULT_SETTINGS;
  const findings: Finding[] = [];
  const scores: Score[] = [];
  const tenantRows = opts.tenantIds.length ? await db.select({ id: tenants.id, name: tenants.name }).from(tenants).where(inArray(tenants.id, opts.tenantIds)) : [];
  const tenantName = new Map(tenantRows.map((t) => [t.id, t.name]));
  const tenantIds = tenantRows.map((t) => t.id).sort();
  const serverMap = await loadServers(db, tenantIds);

  // One usage read per distinct window (tenants normally share the default).
  const windows = new Map<number, string[]>();
  for (const t of tenantIds) {
    const d = settingsOf(t).unusedDays;
    windows.set(d, [...(windows.get(d) ?? []), t]);
  }
  const usageByWindow = new Map<number, UsageRow[]>();
  let truncated = false;
  for (const days of windows.keys()) {
    const since = new Date(now.getTime() - days * DAY);
    const u = await usageSince(db, [...serverMap.keys()], since, read);
    usageByWindow.set(days, u.rows);
    truncated ||= u.truncated;
  }

  const base = (tenantId: string | null, days: number) => ({ windowDays: days, since: new Date(now.getTime() - days * DAY).toISOString() });
  const make = (key: string, f: Omit<Finding, "id" | "tenantName">): Finding => ({ id: findingId(key), tenantName: f.tenantId ? (tenantName.get(f.tenantId) ?? null) : null, ...f });

  for (const tenantId of tenantIds) {
    const { unusedDays: days, smallSharePercent } = settingsOf(tenantId);
    const since = new Date(now.getTime() - days * DAY);
    const usage = usageByWindow.get(days) ?? [];
    const usable = [...serverMap.values()].filter((s) => s.tenantIds.includes(tenantId));

    // ---- privilege score: scope × tool pairs of the servers this tenant may use, and its grants.
    let pairsGranted = 0;
    let pairsUsed = 0;
    const usedByTenant = new Set<string>();
    for (const r of usage) if (r.tenantId === tenantId && r.allowed > 0) for (const sc of r.scopes) usedByTenant.add(pairKey(r.serverId, sc, r.tool));
    for (const s of usable) {
      for (const [scope, names] of grantedPairs(s)) {
        pairsGranted += names.length;
        pairsUsed += names.filter((n) => usedByTenant.has(pairKey(s.id, scope, n))).length;
      }
    }
    const grantRows = await db
      .select({ g: grants, serverName: servers.name })
      .from(grants)
      .leftJoin(servers, eq(servers.id, grants.serverId))
      .where(and(eq(grants.tenantId, tenantId), isNull(grants.revokedAt)));
    const grantsUsed = grantRows.filter((r) => r.g.lastSeenAt && r.g.lastSeenAt >= since).length;
    const granted = pairsGranted + grantRows.length;
    const used = pairsUsed + grantsUsed;
    scores.push({
      tenantId,
      granted,
      used,
      score: granted ? Math.round((1000 * used) / granted) / 10 : 100,
      pairs: { granted: pairsGranted, used: pairsUsed },
      grants: { granted: grantRows.length, used: grantsUsed },
    });

    // ---- scope mappings of the servers this tenant owns: usage by every tenant of the server counts.
    for (const s of usable.filter((x) => x.owner === tenantId)) {
      const pairs = grantedPairs(s);
      const used = new Map<string, number>();
      const called = new Map<string, { n: number; lastAt: Date; lastId: string }>();
      for (const r of usage) {
        if (r.serverId !== s.id) continue;
        const c = called.get(r.tool);
        const n = r.allowed + r.denied;
        if (!c) called.set(r.tool, { n, lastAt: r.lastAt, lastId: r.lastId });
        else {
          c.n += n;
          if (r.lastAt > c.lastAt) Object.assign(c, { lastAt: r.lastAt, lastId: r.lastId });
        }
        if (r.allowed > 0) for (const sc of r.scopes) used.set(`${sc}\u0000${r.tool}`, (used.get(`${sc}\u0000${r.tool}`) ?? 0) + r.allowed);
      }
      const unusedTools = new Set<string>();
      for (const [, names] of pairs) for (const n of names) unusedTools.add(n);
      const lastUse = await lastScopeUseBefore(db, s.id, [...unusedTools], since, tenantId, read);
      for (const [scope, names] of pairs) {
        const unused = names.filter((n) => !used.has(`${scope}\u0000${n}`));
        if (!unused.length) continue;
        const inUse = names.filter((n) => used.has(`${scope}\u0000${n}`));
        const before = unused.map((n) => lastUse.get(`${n}\u0000${scope}`)).filter((x): x is { at: Date; id: string | null } => Boolean(x));
        const last = before.sort((a, b) => b.at.getTime() - a.at.getTime())[0];
        const calls = inUse.reduce((a, n) => a + (used.get(`${scope}\u0000${n}`) ?? 0), 0);
        findings.push(
          make(`unused_scope_mapping:${s.id}:${scope}`, {
            kind: "unused_scope_mapping",
            tenantId,
            severity: unused.length === names.length ? "high" : "medium",
            title: `Scope ${scope} grants ${unused.length} tool${unused.length > 1 ? "s" : ""} no call used in ${days} days`,
            detail: `On ${s.name}, scope ${scope} maps ${names.length} tool${names.length > 1 ? "s" : ""}; ${unused.join(", ")} ${unused.length > 1 ? "were" : "was"} not called with it by any tenant since ${since.toISOString().slice(0, 10)}. Narrowing the mapping removes ${unused.length > 1 ? "them" : "it"} from the scope.`,
            subject: { type: "scope", id: scope, label: scope, serverId: s.id, serverName: s.name, href: `/servers/${s.id}?tab=scopes` },
            evidence: {
              ...base(tenantId, days),
              calls,
              lastUsedAt: iso(last?.at),
              exampleDecisionIds: newestIds(before.flatMap((b) => (b.id ? [b.id] : []))),
              lists: { unusedTools: unused, usedTools: inUse },
              counts: { mappedTools: names.length, unusedTools: unused.length, callsWithScope: calls, mappingVersion: s.mappingVersion },
            },
            remedies: [{ action: "narrow_mapping", label: `Draft: remove ${unused.length} tool${unused.length > 1 ? "s" : ""} from ${scope}`, changesPolicy: true }],
          }),
        );
      }
      // Tools some scope makes callable that no call (allowed or denied, any tenant) reached in the window.
      const mapped = new Map<string, string[]>();
      for (const [scope, names] of pairs) for (const n of names) mapped.set(n, [...(mapped.get(n) ?? []), scope]);
      const never = [...mapped.keys()].filter((n) => !called.has(n)).sort();
      const lastCall = await lastToolCallBefore(db, s.id, never, since, tenantId, read);
      for (const name of never) {
        const tool = s.callable.get(name)!;
        const last = lastCall.get(name);
        const scopes = mapped.get(name)!;
        findings.push(
          make(`uncalled_tool:${s.id}:${name}`, {
            kind: "uncalled_tool",
            tenantId,
            severity: tool.risk === "high" || tool.risk === "critical" ? "high" : "medium",
            title: `Tool ${name} is callable but was not called in ${days} days`,
            detail: `On ${s.name}, ${scopes.length > 1 ? "scopes" : "scope"} ${scopes.join(", ")} make ${name} callable (risk: ${tool.risk}); no tenant called it since ${since.toISOString().slice(0, 10)} (last call: ${ago(last?.at ?? null, now)}).`,
            subject: { type: "tool", id: tool.id, label: name, serverId: s.id, serverName: s.name, href: `/servers/${s.id}?tab=tools` },
            evidence: { ...base(tenantId, days), calls: 0, lastUsedAt: iso(last?.at), exampleDecisionIds: last?.id ? [last.id] : [], lists: { scopes }, counts: { scopes: scopes.length } },
            remedies: [
              { action: "remove_from_mapping", label: `Draft: remove ${name} from ${scopes.length > 1 ? `${scopes.length} scopes` : scopes[0]}`, changesPolicy: true },
              { action: "block_tool", label: `Draft: block ${name}`, changesPolicy: true },
            ],
          }),
        );
      }
    }

    // ---- users and clients that use a small part of what their scopes allow.
    for (const s of usable) {
      const pairs = grantedPairs(s);
      for (const who of ["user", "client"] as const) {
        const byWho = new Map<string, { scopes: Set<string>; used: Map<string, number>; ids: string[]; lastAt: Date }>();
        for (const r of usage) {
          if (r.serverId !== s.id || r.tenantId !== tenantId || r.allowed === 0) continue;
          const k = who === "user" ? r.userId : r.clientId;
          if (!k) continue;
          let e = byWho.get(k);
          if (!e) byWho.set(k, (e = { scopes: new Set(), used: new Map(), ids: [], lastAt: r.lastAt }));
          for (const sc of r.scopes) e.scopes.add(sc);
          e.used.set(r.tool, (e.used.get(r.tool) ?? 0) + r.allowed);
          e.ids.push(r.lastId);
          if (r.lastAt > e.lastAt) e.lastAt = r.lastAt;
        }
        for (const [k, e] of byWho) {
          const allowed = new Set<string>();
          for (const sc of e.scopes) for (const n of pairs.get(sc) ?? []) allowed.add(n);
          const usedTools = [...e.used.keys()].sort();
          const usedAllowed = usedTools.filter((n) => allowed.has(n)).length;
          if (allowed.size < MIN_ALLOWED_FOR_SHARE || usedAllowed * 100 > smallSharePercent * allowed.size) continue;
          const share = Math.round((100 * usedAllowed) / allowed.size);
          const calls = [...e.used.values()].reduce((a, b) => a + b, 0);
          const label = who === "user" ? `User ${k}` : `Client ${k}`;
          findings.push(
            make(`over_broad_${who}:${tenantId}:${s.id}:${k}`, {
              kind: who === "user" ? "over_broad_user" : "over_broad_client",
              tenantId,
              severity: share <= 10 ? "high" : "medium",
              title: `${label} used ${usedAllowed} of ${allowed.size} tools its scopes allow on ${s.name} (${share}%)`,
              detail: `In ${days} days ${label.toLowerCase()} made ${calls} allowed call${calls === 1 ? "" : "s"} to ${usedTools.join(", ")}; its scopes (${[...e.scopes].sort().join(", ") || "none"}) allow ${allowed.size} tools. A policy can permit only what it used.`,
              subject: {
                type: who,
                id: k,
                label: k,
                serverId: s.id,
                serverName: s.name,
                href: who === "user" ? `/grants?userId=${encodeURIComponent(k)}` : `/grants?clientId=${encodeURIComponent(k)}`,
              },
              evidence: {
                ...base(tenantId, days),
                calls,
                lastUsedAt: iso(e.lastAt),
                exampleDecisionIds: newestIds(e.ids),
                lists: { usedTools, unusedTools: [...allowed].filter((n) => !e.used.has(n)).sort(), scopes: [...e.scopes].sort() },
                counts: { allowedTools: allowed.size, usedTools: usedAllowed, sharePercent: share },
              },
              remedies: [
                { action: "least_privilege_policy", label: `Draft a policy that permits ${label.toLowerCase()} only ${usedTools.length} tool${usedTools.length > 1 ? "s" : ""}`, changesPolicy: true },
              ],
            }),
          );
        }
      }
    }

    // ---- grants (user × client) and clients not seen in the window.
    for (const { g, serverName } of grantRows) {
      const last = seenAt(g.lastSeenAt, g.firstSeenAt, g.createdAt);
      if (!last || last >= since) continue;
      findings.push(
        make(`unused_grant:${g.id}`, {
          kind: "unused_grant",
          tenantId,
          severity: "medium",
          title: `Grant of ${g.userId} to ${g.clientId} unused for ${days}+ days`,
          detail: `${g.userId} let ${g.clientId} act on ${serverName ?? g.serverId} (${g.scopes.join(", ") || "no scopes"}); last use ${ago(g.lastSeenAt, now)}, ${g.calls} call${g.calls === 1 ? "" : "s"} in all. Revoking refuses its tokens issued before now.`,
          subject: { type: "grant", id: g.id, label: `${g.userId} → ${g.clientId}`, serverId: g.serverId, serverName: serverName ?? undefined, href: `/grants?userId=${encodeURIComponent(g.userId)}` },
          evidence: { ...base(tenantId, days), calls: 0, lastUsedAt: iso(g.lastSeenAt), exampleDecisionIds: [], lists: { scopes: g.scopes }, counts: { totalCalls: g.calls } },
          remedies: [{ action: "revoke_grant", label: "Revoke this grant", changesPolicy: false, api: { method: "POST", path: `/api/v1/admin/grants/${g.id}/revoke`, body: { reason: "" } } }],
        }),
      );
    }
    const activeGrantClients = new Set(grantRows.map((r) => r.g.clientId));
    const clientRows = await db.select().from(oauthClients).where(eq(oauthClients.tenantId, tenantId));
    for (const c of clientRows) {
      if (c.status === "blocked") continue;
      const last = seenAt(c.lastSeenAt, c.firstSeenAt, c.createdAt);
      if (!last || last >= since) continue;
      findings.push(
        make(`unseen_client:${c.id}`, {
          kind: "unseen_client",
          tenantId,
          severity: activeGrantClients.has(c.clientId) ? "medium" : "low",
          title: `Client ${c.name || c.clientId} not seen for ${days}+ days`,
          detail: `${c.name || c.clientId} (${c.status}) was last seen ${ago(c.lastSeenAt, now)}${activeGrantClients.has(c.clientId) ? " and still holds active grants" : ""}. Revoking refuses every token of this client issued before now.`,
          subject: { type: "client", id: c.clientId, label: c.name || c.clientId, href: `/grants?clientId=${encodeURIComponent(c.clientId)}` },
          evidence: {
            ...base(tenantId, days),
            calls: 0,
            lastUsedAt: iso(c.lastSeenAt),
            exampleDecisionIds: [],
            lists: {},
            counts: { activeGrants: grantRows.filter((r) => r.g.clientId === c.clientId).length },
          },
          remedies: [
            {
              action: "revoke_client",
              label: "Revoke every grant of this client",
              changesPolicy: false,
              api: { method: "POST", path: "/api/v1/admin/revocations", body: { tenantId, clientId: c.clientId, reason: "" } },
            },
          ],
        }),
      );
    }

    // ---- vault entries of this tenant (its own, and the shared ones of servers it owns).
    const owned = usable.filter((s) => s.owner === tenantId).map((s) => s.id);
    const entries = await db
      .select()
      .from(vaultEntries)
      .where(and(eq(vaultEntries.status, "active"), or(eq(vaultEntries.tenantId, tenantId), owned.length ? and(isNull(vaultEntries.tenantId), inArray(vaultEntries.serverId, owned)) : undefined)));
    const resolved = await lastVaultResolve(
      db,
      entries.map((e) => e.id),
    );
    for (const e of entries) {
      const serverName = serverMap.get(e.serverId)?.name;
      const subject = { type: "vault_entry", id: e.id, label: e.name, serverId: e.serverId, serverName, href: `/vault?entry=${e.id}` };
      const rotate: Remedy = { action: "rotate_vault", label: "Rotate (enter the new secret on the vault page)", changesPolicy: false, href: `/vault?entry=${e.id}` };
      const retire: Remedy = { action: "retire_vault", label: "Retire this entry", changesPolicy: false, api: { method: "POST", path: `/api/v1/admin/vault/${e.id}/retire` } };
      const lastResolve = resolved.get(e.id) ?? null;
      const ev = (counts: Record<string, number>) => ({
        ...base(tenantId, days),
        calls: 0,
        lastUsedAt: iso(lastResolve),
        exampleDecisionIds: [],
        lists: {},
        counts: { version: e.currentVersion, ...counts },
      });
      const due = e.nextRotationAt !== null && e.nextRotationAt <= now;
      if (due) {
        findings.push(
          make(`vault_rotation_due:${e.id}`, {
            kind: "vault_rotation_due",
            tenantId,
            severity: "high",
            title: `Credential ${e.name} is past its rotation date`,
            detail: `Rotation every ${e.rotationIntervalDays ?? "?"} days was due ${ago(e.nextRotationAt, now)} (${e.nextRotationAt!.toISOString().slice(0, 10)}); version ${e.currentVersion} is in use.`,
            subject,
            evidence: ev({ overdueDays: Math.floor((now.getTime() - e.nextRotationAt!.getTime()) / DAY) }),
            remedies: [rotate, retire],
          }),
        );
      } else if (e.currentVersion === 1 && e.createdAt < since) {
        findings.push(
          make(`vault_never_rotated:${e.id}`, {
            kind: "vault_never_rotated",
            tenantId,
            severity: "medium",
            title: `Credential ${e.name} was never rotated`,
            detail: `Stored ${ago(e.createdAt, now)}, still at version 1${e.rotationIntervalDays ? "" : ", with no rotation interval"}.`,
            subject,
            evidence: ev({ ageDays: Math.floor((now.getTime() - e.createdAt.getTime()) / DAY) }),
            remedies: [rotate, retire],
          }),
        );
      }
      if (e.createdAt < since && (!lastResolve || lastResolve < since)) {
        findings.push(
          make(`vault_unused:${e.id}`, {
            kind: "vault_unused",
            tenantId,
            severity: "medium",
            title: `Credential ${e.name} was not used by any agent in ${days} days`,
            detail: `No agent fetched it since ${since.toISOString().slice(0, 10)} (last: ${ago(lastResolve, now)}). Retire it if the upstream no longer needs it.`,
            subject,
            evidence: ev({}),
            remedies: [retire, rotate],
          }),
        );
      }
    }
  }

  // ---- owners' fleet-wide findings: agents not seen, enrollment tokens never used.
  if (opts.global) {
    const days = settingsOf(null).unusedDays;
    const since = new Date(now.getTime() - days * DAY);
    const agentRows = await db.select({ a: agents, fleetName: fleets.name }).from(agents).innerJoin(fleets, eq(fleets.id, agents.fleetId)).where(isNull(agents.revokedAt));
    for (const { a, fleetName } of agentRows) {
      const last = seenAt(a.lastSeenAt, a.createdAt)!;
      if (last >= since) continue;
      findings.push(
        make(`agent_unseen:${a.id}`, {
          kind: "agent_unseen",
          tenantId: null,
          severity: "medium",
          title: `Agent ${a.name} not seen for ${days}+ days`,
          detail: `Agent ${a.name} of fleet ${fleetName} last called the control plane ${ago(a.lastSeenAt, now)}; its key still works. Revoking stops the key at once.`,
          subject: { type: "agent", id: a.id, label: a.name, href: `/fleets/${a.fleetId}` },
          evidence: { windowDays: days, since: since.toISOString(), calls: 0, lastUsedAt: iso(a.lastSeenAt), exampleDecisionIds: [], lists: {}, counts: {} },
          remedies: [{ action: "revoke_agent", label: "Revoke this agent", changesPolicy: false, api: { method: "DELETE", path: `/api/v1/admin/agents/${a.id}` } }],
        }),
      );
    }
    const tokenRows = await db
      .select({ t: enrollmentTokens, fleetName: fleets.name })
      .from(enrollmentTokens)
      .innerJoin(fleets, eq(fleets.id, enrollmentTokens.fleetId))
      .where(isNull(enrollmentTokens.usedAt));
    for (const { t, fleetName } of tokenRows) {
      if (now.getTime() - t.createdAt.getTime() < TOKEN_STALE_MS) continue;
      const expired = t.expiresAt <= now;
      findings.push(
        make(`enrollment_token_unused:${t.id}`, {
          kind: "enrollment_token_unused",
          tenantId: null,
          severity: expired ? "low" : "medium",
          title: `Enrollment token of fleet ${fleetName} never used`,
          detail: `Created ${ago(t.createdAt, now)} by ${t.createdBy}, ${expired ? "expired" : `valid until ${t.expiresAt.toISOString()}`}, never used to enroll an agent.`,
          subject: { type: "enrollment_token", id: t.id, label: `${fleetName} token`, href: `/fleets/${t.fleetId}` },
          evidence: { windowDays: days, since: since.toISOString(), calls: 0, lastUsedAt: null, exampleDecisionIds: [], lists: {}, counts: { expired: expired ? 1 : 0 } },
          remedies: [
            { action: "revoke_enrollment_token", label: "Revoke this token", changesPolicy: false, api: { method: "DELETE", path: `/api/v1/admin/fleets/${t.fleetId}/enrollment-tokens/${t.id}` } },
          ],
        }),
      );
    }
  }

  const rank = { high: 0, medium: 1, low: 2 };
  findings.sort((a, b) => rank[a.severity] - rank[b.severity] || a.kind.localeCompare(b.kind) || a.title.localeCompare(b.title));
  return { findings, scores, truncated, tookMs: Math.round((performance.now() - t0) * 10) / 10 };
}
