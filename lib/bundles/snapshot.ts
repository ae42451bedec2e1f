import { desc, inArray } from "drizzle-orm";
import type { Db } from "@/db/client";
import { policies, policyTests, scopeMappings, serverTenants, servers, tenantIssuers, toolVersions, tools } from "@/db/schema";
import { protectedResourceMetadata } from "@/lib/enforcement/prm";
import type { RegistrySnapshot } from "./compile";
import { emptyLive, loadLiveSections } from "./live";
import { trustOf } from "./trust";

/** Reads what the compiler needs for these servers (call inside a transaction for consistency). */
export async function loadSnapshot(db: Db, serverIds: string[]): Promise<RegistrySnapshot> {
  if (serverIds.length === 0) return { servers: [], policies: [], tests: [], live: emptyLive() };
  const [serverRows, access, toolRows, mappingRows, policyRows, testRows] = await Promise.all([
    db.select().from(servers).where(inArray(servers.id, serverIds)),
    db.select().from(serverTenants).where(inArray(serverTenants.serverId, serverIds)),
    db.select().from(tools).where(inArray(tools.serverId, serverIds)),
    db.select().from(scopeMappings).where(inArray(scopeMappings.serverId, serverIds)).orderBy(desc(scopeMappings.version)),
    db.select().from(policies).where(inArray(policies.serverId, serverIds)),
    db.select().from(policyTests).where(inArray(policyTests.serverId, serverIds)),
  ]);
  const approvedIds = toolRows.flatMap((t) => (t.approvedVersionId ? [t.approvedVersionId] : []));
  const versions = approvedIds.length ? await db.select().from(toolVersions).where(inArray(toolVersions.id, approvedIds)) : [];
  const versionById = new Map(versions.map((v) => [v.id, v]));
  const tenantsUsed = [...new Set([...serverRows.map((s) => s.tenantId), ...access.map((a) => a.tenantId)])];
  const trustRows = tenantsUsed.length ? await db.select().from(tenantIssuers).where(inArray(tenantIssuers.tenantId, tenantsUsed)) : [];
  // The live sections come from the very rows the servers' tenant sets are built from (one tenant set).
  const live = await loadLiveSections(
    db,
    serverRows.map((s) => s.id),
    [...tenantsUsed].sort(),
  );
  return {
    servers: serverRows.map((s) => {
      const mapping = mappingRows.find((m) => m.serverId === s.id)?.mapping ?? {};
      const tenantIds = [
        s.tenantId,
        ...access
          .filter((a) => a.serverId === s.id && a.tenantId !== s.tenantId)
          .map((a) => a.tenantId)
          .sort(),
      ];
      return {
        id: s.id,
        name: s.name,
        tenantId: s.tenantId,
        tenantIds,
        resourceUri: s.resourceUri,
        upstreamUrl: s.upstreamUrl,
        scopes: s.scopes,
        issuers: s.issuers,
        trust: trustOf(trustRows, tenantIds),
        prm: protectedResourceMetadata(s),
        // Absent when "off": bundles of servers without DPoP hash exactly as before.
        ...(s.dpop === "allowed" || s.dpop === "required" ? { dpop: s.dpop } : {}),
        // Only when on and DPoP is: bundles without it hash as before.
        ...((s.dpop === "allowed" || s.dpop === "required") && s.dpopNonce === true ? { dpopNonce: true as const } : {}),
        // Absent when off, for the same reason (issue 11).
        ...(s.upstreamLogging === true ? { upstreamLogging: true as const } : {}),
        mapping,
        tools: toolRows
          .filter((t) => t.serverId === s.id)
          .map((t) => {
            const v = t.approvedVersionId ? versionById.get(t.approvedVersionId) : undefined;
            // Resources and templates carry their listed display name and MIME type (lib/enforcement/catalogue-entry.ts).
            const d = v?.definition ?? {};
            const extra =
              t.kind === "resource" || t.kind === "resourceTemplate" ? { label: typeof d.name === "string" ? d.name : "", mimeType: typeof d.mimeType === "string" ? d.mimeType : null } : {};
            return {
              ...(t.kind === "tool" ? {} : { kind: t.kind }),
              name: t.name,
              risk: t.risk,
              blocked: t.blocked,
              approved: v ? { hash: v.hash, title: v.title, description: v.description, annotations: v.annotations, inputSchema: v.inputSchema, ...extra } : null,
            };
          }),
      };
    }),
    policies: policyRows.map((p) => ({ id: p.id, tenantId: p.tenantId, serverId: p.serverId, name: p.name, kind: p.kind, cedar: p.cedar, enabled: p.enabled })),
    tests: testRows.map((t) => ({ id: t.id, tenantId: t.tenantId, serverId: t.serverId, name: t.name, request: t.request, expected: t.expected })),
    live,
  };
}
