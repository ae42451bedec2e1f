"use client";

import Link from "next/link";
import { useParams } from "next/navigation";
import { useState } from "react";
import { useCanWrite } from "@/components/shell/context";
import { Badge, Button, Card, ConfirmButton, ErrorBanner, PageHeader, Time } from "@/components/ui";
import { kindLabels, placementLabel, secretHint, useEntryAgents, useVaultEntry, useVaultWrite, type VaultEntry, type VaultVersionRow } from "@/components/vault/queries";
import { AgentsCard } from "@/components/vault/agents-card";
import { EditEntry } from "@/components/vault/edit-entry";
import { FormError } from "@/components/vault/errors";
import { MakeCurrentDialog } from "@/components/vault/make-current-dialog";
import { RotateDialog } from "@/components/vault/rotate-dialog";
import { TestConnection } from "@/components/vault/test-connection";
import { VersionsTimeline } from "@/components/vault/versions-timeline";
import { apiFetch } from "@/lib/client/api";

export default function VaultEntryPage() {
  const { entryId } = useParams<{ entryId: string }>();
  const entry = useVaultEntry(entryId);
  const e = entry.data;
  return (
    <>
      <p className="mb-2 text-sm">
        <Link href="/vault" className="text-indigo-700 hover:underline">
          ← Credential vault
        </Link>
      </p>
      <ErrorBanner error={entry.error} />
      {e ? <EntryView e={e} /> : null}
    </>
  );
}

function EntryView({ e }: { e: VaultEntry }) {
  const canWrite = useCanWrite(e.adminTenantId) && e.status === "active";
  const [rotating, setRotating] = useState(false);
  const [editing, setEditing] = useState(false);
  const [restoring, setRestoring] = useState<VaultVersionRow | null>(null);
  const agents = useEntryAgents(e.id);
  const retire = useVaultWrite(() => apiFetch<VaultEntry>(`/vault/${e.id}/retire`, { method: "POST", body: {} }));
  const confirm = useVaultWrite(() => apiFetch<VaultEntry>(`/vault/${e.id}/confirm-origin`, { method: "POST", body: { origin: e.upstreamOrigin } }));
  const actions = canWrite ? (
    <>
      <Button variant="secondary" onClick={() => setEditing(true)}>
        Edit
      </Button>
      <Button onClick={() => setRotating(true)}>Rotate</Button>
      <ConfirmButton
        label="Retire"
        title={`Retire ${e.name}?`}
        body="Every version stops working at once: agents drop it with the next live bundle (within seconds) and calls needing it fail closed. This cannot be undone; a new entry can be created afterwards."
        confirmLabel="Retire credential"
        onConfirm={() => retire.mutateAsync(undefined)}
      />
    </>
  ) : null;
  return (
    <>
      <PageHeader
        title={
          <span className="flex items-center gap-2">
            {e.name} <Badge color={e.status === "active" ? "green" : "gray"}>{e.status}</Badge>
            {e.rotationDue ? <Badge color="red">rotation due</Badge> : null}
            {e.suspended ? <Badge color="red">suspended</Badge> : null}
          </span>
        }
        description={e.notes || undefined}
        actions={actions}
      />
      {e.suspended ? <SuspendedNotice e={e} canWrite={canWrite} onConfirm={() => confirm.mutateAsync(undefined)} /> : null}
      <FormError error={confirm.error} />
      {canWrite && !e.suspended && e.kind !== "oauth_token_exchange" && e.kind !== "oauth_user_brokered" ? (
        <div className="mb-4">
          <TestConnection entryId={e.id} />
        </div>
      ) : null}
      <div className="grid gap-4 lg:grid-cols-3">
        <Card title="Credential" className="lg:col-span-1">
          <dl className="grid grid-cols-[auto_1fr] gap-x-4 gap-y-2 text-sm">
            <dt className="text-slate-500">Server</dt>
            <dd>
              <Link href={`/servers/${e.serverId}`} className="text-indigo-700 hover:underline">
                {e.serverName ?? e.serverId}
              </Link>
            </dd>
            <dt className="text-slate-500">Tenant</dt>
            <dd>{e.tenantId ? (e.tenantName ?? e.tenantId) : "shared by every tenant of the server"}</dd>
            <dt className="text-slate-500">Kind</dt>
            <dd>{kindLabels[e.kind] ?? e.kind}</dd>
            <dt className="text-slate-500">Goes into</dt>
            <dd>
              <code className="text-xs">{placementLabel(e.placement)}</code>
            </dd>
            {e.oauth?.issuer ? (
              <>
                <dt className="text-slate-500">Issuer</dt>
                <dd className="break-all">
                  <code className="text-xs">{e.oauth.issuer}</code>
                </dd>
              </>
            ) : null}
            {e.oauth?.authorizationUrl ? (
              <>
                <dt className="text-slate-500">Authorization endpoint</dt>
                <dd className="break-all">
                  <code className="text-xs">{e.oauth.authorizationUrl}</code>
                </dd>
              </>
            ) : null}
            {e.oauth ? (
              <>
                <dt className="text-slate-500">Token endpoint</dt>
                <dd className="break-all">
                  <code className="text-xs">{e.oauth.tokenUrl}</code> (client {e.oauth.clientId}, {e.oauth.authMethod})
                </dd>
              </>
            ) : null}
            <dt className="text-slate-500">Bound to</dt>
            <dd>
              <code className="text-xs">{e.boundOrigin || "no origin recorded"}</code>
            </dd>
            <dt className="text-slate-500">Current</dt>
            <dd>
              v{e.currentVersion} <code className="text-xs">{secretHint(e.fingerprint, e.lastChars)}</code>
            </dd>
            <dt className="text-slate-500">Age</dt>
            <dd>
              {e.ageDays} days (since <Time iso={e.currentSince} />)
            </dd>
            <dt className="text-slate-500">Next rotation</dt>
            <dd>{e.nextRotationAt ? <Time iso={e.nextRotationAt} /> : `not scheduled${e.rotationIntervalDays ? "" : " (no interval set)"}`}</dd>
            <dt className="text-slate-500">Owner</dt>
            <dd>{e.owner || "—"}</dd>
            <dt className="text-slate-500">Created</dt>
            <dd>
              <Time iso={e.createdAt} /> by {e.createdBy}
            </dd>
          </dl>
          <p className="mt-4 text-xs text-slate-500">
            The secret itself is never shown: only a keyed fingerprint (HMAC under a key derived from the KEK, so a guess cannot be tested offline) and, for long secrets, the last 4 characters.
          </p>
        </Card>
        <Card title="Versions" className="lg:col-span-2">
          <VersionsTimeline versions={e.versions} entry={e} canWrite={canWrite} agents={agents.data} onMakeCurrent={setRestoring} />
        </Card>
      </div>
      <AgentsCard entry={e} />
      <FormError error={retire.error} />
      <MakeCurrentDialog entry={e} version={restoring} onClose={() => setRestoring(null)} />
      <RotateDialog entry={e} open={rotating} onClose={() => setRotating(false)} />
      <EditEntry entry={e} open={editing} onClose={() => setEditing(false)} />
    </>
  );
}

/** Why the secret is not used, and what lifts it: re-entering (rotate) or confirming it for the new origin. */
function SuspendedNotice({ e, canWrite, onConfirm }: { e: VaultEntry; canWrite: boolean; onConfirm: () => Promise<unknown> }) {
  return (
    <div className="mb-4 rounded-md border border-red-200 bg-red-50 p-4 text-sm text-red-900" data-testid="vault-suspended">
      <p className="font-medium">This secret is suspended: the server&apos;s upstream moved to another origin.</p>
      <p className="mt-1">
        Stored for <code>{e.boundOrigin || "another upstream"}</code>; the upstream is now <code>{e.upstreamOrigin}</code>. Agents do not send it anywhere (calls that need it fail closed) until
        someone allowed to write this secret re-enters it (Rotate) or confirms that it belongs to the new origin.
      </p>
      {canWrite && e.upstreamOrigin ? (
        <div className="mt-3">
          <ConfirmButton
            label={`Confirm for ${e.upstreamOrigin}`}
            title={`Send ${e.name} to ${e.upstreamOrigin}?`}
            body={`Agents will inject this secret into calls to ${e.upstreamOrigin} from the next live bundle on. Confirm only if this secret is meant for that host. The confirmation is recorded in the admin trail.`}
            confirmLabel="Confirm new origin"
            onConfirm={onConfirm}
          />
        </div>
      ) : null}
    </div>
  );
}
