"use client";

import Link from "next/link";
import { Suspense } from "react";
import { PairPicker, usePolicyPair } from "@/components/policies/pair-picker";
import { useCedarSchema, usePolicies } from "@/components/policies/queries";
import { TestsSection } from "@/components/policies/tests-section";
import type { PublicPolicy } from "@/components/policies/types";
import { useCanWrite, useMe } from "@/components/shell/context";
import { Badge, EmptyState, ErrorBanner, PageHeader, Table, Td, Time } from "@/components/ui";
import { qs } from "@/lib/client/api";

/** permit / forbid, from the rule or from the Cedar text. */
function effects(p: PublicPolicy): string[] {
  if (p.rule) return [p.rule.effect];
  const found = new Set<string>();
  for (const m of p.cedar.replace(/\/\/.*$/gm, "").matchAll(/\b(permit|forbid)\s*\(/g)) found.add(m[1]!);
  return [...found];
}

const linkButton = "inline-flex items-center rounded-md px-3 py-1.5 text-sm font-medium shadow-sm focus-visible:outline-2 focus-visible:outline-offset-2 focus-visible:outline-indigo-600";

function PoliciesView() {
  const me = useMe();
  const pair = usePolicyPair();
  const { tenantId, serverId, server } = pair;
  const canWrite = useCanWrite(tenantId);
  const policies = usePolicies(tenantId, serverId);
  const schema = useCedarSchema(serverId);
  const newHref = (kind: "rule" | "cedar") => `/policies/new${qs({ tenant: tenantId, server: serverId, kind })}`;
  const actions =
    canWrite && tenantId && serverId ? (
      <>
        <Link href={newHref("cedar")} className={`${linkButton} bg-white text-slate-800 ring-1 ring-inset ring-slate-300 hover:bg-slate-50`}>
          New Cedar policy
        </Link>
        <Link href={newHref("rule")} className={`${linkButton} bg-indigo-600 text-white hover:bg-indigo-500`}>
          New rule
        </Link>
      </>
    ) : null;
  const items = policies.data?.items ?? [];
  const tenantName = me.tenants.find((t) => t.id === tenantId)?.name ?? "";

  return (
    <>
      <PageHeader
        title="Policies"
        description="Who may call which tool, and when, for one tenant on one MCP server. Write rules with the builder or Cedar by hand; test them here, try requests in the simulator, then publish a bundle to enforce them."
        actions={actions}
      />
      <div className="mb-6">
        <PairPicker pair={pair} />
      </div>

      {me.tenants.length === 0 ? (
        <EmptyState title="You are not a member of any tenant">Policies belong to a tenant. Ask an owner to add you to one.</EmptyState>
      ) : pair.servers.data && pair.servers.data.items.length === 0 ? (
        <EmptyState
          title={`${tenantName || "This tenant"} has no MCP server`}
          action={
            <Link href="/servers" className="text-sm font-medium text-indigo-700 hover:underline">
              Go to Servers
            </Link>
          }
        >
          Policies govern the tools of a server the tenant may use. Register a server (or have one shared with this tenant) and approve its tools first.
        </EmptyState>
      ) : tenantId && serverId ? (
        <div className="space-y-8">
          <section aria-labelledby="policies-heading" className="space-y-3">
            <h2 id="policies-heading" className="sr-only">
              Policies of {tenantName} on {server?.name}
            </h2>
            <ErrorBanner error={policies.error} />
            {policies.isPending ? (
              <p role="status" className="text-sm text-slate-500">
                Loading policies…
              </p>
            ) : items.length === 0 ? (
              <EmptyState title={`No policy for ${tenantName} on ${server?.name ?? "this server"}`} action={actions ? <div className="flex justify-center gap-2">{actions}</div> : undefined}>
                Without a policy, only the server’s scope mapping grants tools. Add a rule (for example “the support group may call read-only tools during office hours”) or write Cedar for anything
                the builder cannot express.
                {schema.data && !schema.data.tools.some((t) => t.approved && !t.blocked) ? " Note: this server has no approved tool yet, so a policy cannot name any." : ""}
              </EmptyState>
            ) : (
              <Table head={["Name", "Kind", "Effect", "Status", "Updated"]}>
                {items.map((p) => (
                  <tr key={p.id} data-testid={`policy-row-${p.name}`}>
                    <Td>
                      <Link href={`/policies/${encodeURIComponent(p.id)}`} className="font-medium text-indigo-700 hover:underline">
                        {p.name}
                      </Link>
                      {p.description ? <p className="mt-0.5 line-clamp-1 max-w-xl text-xs text-slate-500">{p.description}</p> : null}
                    </Td>
                    <Td>{p.kind === "rule" ? <Badge color="blue">rule</Badge> : <Badge>Cedar</Badge>}</Td>
                    <Td>
                      <span className="inline-flex gap-1">
                        {effects(p).map((e) => (
                          <Badge key={e} color={e === "forbid" ? "red" : "green"}>
                            {e}
                          </Badge>
                        ))}
                      </span>
                    </Td>
                    <Td>{p.enabled ? <Badge color="green">enabled</Badge> : <Badge color="amber">disabled</Badge>}</Td>
                    <Td className="whitespace-nowrap text-xs text-slate-500">
                      <Time iso={p.updatedAt} />
                    </Td>
                  </tr>
                ))}
              </Table>
            )}
            {!canWrite && tenantId ? (
              <p className="text-xs text-slate-500" role="note">
                Read-only: only admins of {tenantName} (and owners) can change its policies and tests.
              </p>
            ) : null}
          </section>

          <TestsSection
            key={`${tenantId}/${serverId}`}
            tenantId={tenantId}
            serverId={serverId}
            canWrite={canWrite}
            schema={schema.data}
            serverScopes={server?.scopes ?? []}
            policies={policies.data?.items}
          />
        </div>
      ) : pair.unknownServer || pair.servers.error ? null : (
        <p role="status" className="text-sm text-slate-500">
          Loading…
        </p>
      )}
    </>
  );
}

export default function PoliciesPage() {
  return (
    <Suspense fallback={<p className="text-sm text-slate-500">Loading policies…</p>}>
      <PoliciesView />
    </Suspense>
  );
}
