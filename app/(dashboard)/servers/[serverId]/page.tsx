"use client";

import { useQueryClient } from "@tanstack/react-query";
import Link from "next/link";
import { useRouter } from "next/navigation";
import { useState } from "react";
import { Badge, Button, Card, ConfirmButton, Time } from "@/components/ui";
import { useCanWrite, useMe } from "@/components/shell/context";
import { DetailRow } from "@/components/servers/fields";
import { useServer } from "@/components/servers/server-context";
import { ServerEditForm } from "@/components/servers/server-edit-form";
import { apiFetch, keys } from "@/lib/client/api";

export default function ServerOverviewPage() {
  const server = useServer();
  const me = useMe();
  const canWrite = useCanWrite(server.tenantId);
  const router = useRouter();
  const qc = useQueryClient();
  const [editing, setEditing] = useState(false);
  const [saved, setSaved] = useState(false);
  const [copied, setCopied] = useState(false);

  const tenantName = (id: string) => me.tenants.find((t) => t.id === id)?.name;
  const tenantRef = (id: string) => (
    <span>
      {tenantName(id) ? <span className="font-medium">{tenantName(id)} </span> : null}
      <code className="font-mono text-xs text-slate-500">{id}</code>
    </span>
  );
  const prm = JSON.stringify(server.protectedResourceMetadata, null, 2);
  const base = `/servers/${encodeURIComponent(server.id)}`;

  return (
    <div className="space-y-6">
      {!canWrite ? (
        <p className="rounded-md bg-slate-100 px-3 py-2 text-sm text-slate-700" role="note">
          Read-only: you can view this server but only admins of its owning tenant can change it.
        </p>
      ) : null}
      {saved && !editing ? (
        <p className="rounded-md bg-emerald-50 px-3 py-2 text-sm text-emerald-800 ring-1 ring-inset ring-emerald-200" role="status">
          Changes saved. Agents pick up the new configuration on their next sync.
        </p>
      ) : null}

      {editing ? (
        <Card title="Edit server">
          <ServerEditForm
            key={server.updatedAt}
            server={server}
            onDone={(ok) => {
              setEditing(false);
              setSaved(ok);
            }}
          />
        </Card>
      ) : (
        <Card
          title="Details"
          actions={
            canWrite ? (
              <Button
                variant="secondary"
                onClick={() => {
                  setSaved(false);
                  setEditing(true);
                }}
              >
                Edit server
              </Button>
            ) : null
          }
        >
          <dl className="divide-y divide-slate-100">
            {server.description ? <DetailRow label="Description">{server.description}</DetailRow> : null}
            <DetailRow label="Owning tenant">{tenantRef(server.tenantId)}</DetailRow>
            <DetailRow label="Resource URI">
              <code className="font-mono text-xs">{server.resourceUri}</code>
            </DetailRow>
            <DetailRow label="Upstream URL">
              <code className="font-mono text-xs">{server.upstreamUrl}</code>
            </DetailRow>
            <DetailRow label="Supported scopes">
              {server.scopes.length ? (
                <span className="flex flex-wrap gap-1">
                  {server.scopes.map((s) => (
                    <Badge key={s}>
                      <span className="font-mono">{s}</span>
                    </Badge>
                  ))}
                </span>
              ) : (
                <span className="text-slate-500">None yet. Tokens cannot be granted any tool until you add scopes{canWrite ? " (Edit server)" : ""}.</span>
              )}
            </DetailRow>
            <DetailRow label="Sender-constrained tokens (DPoP)">
              {server.dpop === "required"
                ? "Required: only DPoP-bound tokens with a valid proof"
                : server.dpop === "allowed"
                  ? "Allowed: DPoP-bound tokens need a valid proof; bearer tokens pass"
                  : "Off: bearer tokens only"}
            </DetailRow>
            <DetailRow label="Upstream logging">
              {server.upstreamLogging
                ? "On: callers may set the log level and receive this server's log messages (they can carry the injected credential and other callers' data)"
                : "Off: logging/setLevel denied, log messages dropped"}
            </DetailRow>
            <DetailRow label="Tenants allowed">
              <ul className="space-y-0.5">
                {server.tenantIds.map((t) => (
                  <li key={t}>
                    {tenantRef(t)} {t === server.tenantId ? <Badge color="blue">owner</Badge> : null}
                  </li>
                ))}
              </ul>
            </DetailRow>
            <DetailRow label="Last import">
              <span className="flex flex-col gap-1">
                <span>
                  <Time iso={server.lastImportAt} />{" "}
                  <Link href={`${base}/tools`} className="ml-2 text-indigo-700 hover:underline">
                    Go to tools
                  </Link>
                </span>
                {server.lastImportError ? <span className="rounded-md bg-rose-50 px-2 py-1 text-rose-800 ring-1 ring-inset ring-rose-200">Last import failed: {server.lastImportError}</span> : null}
              </span>
            </DetailRow>
            <DetailRow label="Created / updated">
              <Time iso={server.createdAt} /> <span className="text-slate-400">/</span> <Time iso={server.updatedAt} />
            </DetailRow>
          </dl>
        </Card>
      )}

      {!editing ? (
        <Card title={`Authorization servers (${server.issuers.length})`}>
          <p className="mb-2 text-xs text-slate-500">
            Advertised in this server&apos;s metadata. Whether a token acts for a tenant is decided by that tenant&apos;s own trusted issuers (its tenant page), never by this list.
          </p>
          {server.issuers.length === 0 ? (
            <p className="text-sm text-slate-600">No authorization server advertised. {canWrite ? "Add one with Edit server." : ""}</p>
          ) : (
            <div className="overflow-x-auto">
              <table className="min-w-full divide-y divide-slate-200 text-sm">
                <thead>
                  <tr>
                    {["Issuer", "Keys", "Algorithms", "Claim mapping"].map((h) => (
                      <th key={h} scope="col" className="px-2 py-1.5 text-left text-xs font-semibold uppercase tracking-wide text-slate-500">
                        {h}
                      </th>
                    ))}
                  </tr>
                </thead>
                <tbody className="divide-y divide-slate-100">
                  {server.issuers.map((i) => (
                    <tr key={i.issuer}>
                      <td className="px-2 py-2 align-top font-mono text-xs">{i.issuer}</td>
                      <td className="px-2 py-2 align-top text-xs">
                        {i.jwksUri ? <code className="block font-mono">{i.jwksUri}</code> : null}
                        {i.discovery ? <Badge>discovery</Badge> : null}
                      </td>
                      <td className="px-2 py-2 align-top">
                        <span className="flex flex-wrap gap-1">
                          {i.algorithms.map((a) => (
                            <Badge key={a}>{a}</Badge>
                          ))}
                        </span>
                      </td>
                      <td className="px-2 py-2 align-top">
                        <dl className="grid grid-cols-[auto_1fr] gap-x-2 text-xs">
                          {(["tenant", "user", "client", "scopes"] as const).map((k) => (
                            <div key={k} className="contents">
                              <dt className="text-slate-500">{k}</dt>
                              <dd className="font-mono">{i.claims[k]}</dd>
                            </div>
                          ))}
                        </dl>
                      </td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          )}
        </Card>
      ) : null}

      <Card
        title="Protected Resource Metadata"
        actions={
          <Button
            variant="ghost"
            onClick={async () => {
              await navigator.clipboard?.writeText(prm).catch(() => {});
              setCopied(true);
            }}
          >
            {copied ? "Copied" : "Copy JSON"}
          </Button>
        }
      >
        <p className="mb-2 text-sm text-slate-600">
          Exactly what agents serve at <code className="font-mono text-xs">/.well-known/oauth-protected-resource</code> for this resource (RFC 9728).
        </p>
        <pre data-testid="prm" className="overflow-x-auto rounded-md bg-slate-900 p-3 font-mono text-xs leading-relaxed text-slate-100">
          {prm}
        </pre>
      </Card>

      {canWrite ? (
        <Card title="Danger zone" className="ring-rose-200">
          <div className="flex flex-wrap items-center justify-between gap-4">
            <p className="max-w-2xl text-sm text-slate-600">
              Deleting the server removes its tool catalogue, every tool version and its scope mappings. Agents stop accepting calls for <code className="font-mono text-xs">{server.resourceUri}</code>
              .
            </p>
            <ConfirmButton
              label="Delete server"
              title={`Delete ${server.name}?`}
              confirmLabel="Delete server"
              body={
                <>
                  <p>
                    This permanently deletes <strong>{server.name}</strong>, its tool catalogue and its scope mapping history. Agents will refuse every request for{" "}
                    <code className="font-mono text-xs">{server.resourceUri}</code>.
                  </p>
                  <p className="mt-2">This cannot be undone. The admin trail keeps a record of the deletion.</p>
                </>
              }
              onConfirm={async () => {
                await apiFetch<void>(`/servers/${encodeURIComponent(server.id)}`, { method: "DELETE" });
                // Mark everything stale without refetching the deleted server while we leave.
                void qc.invalidateQueries({ queryKey: keys.servers.all, refetchType: "none" });
                void qc.invalidateQueries({ queryKey: keys.tools.all, refetchType: "none" });
                router.replace("/servers");
              }}
            />
          </div>
        </Card>
      ) : null}
    </div>
  );
}
