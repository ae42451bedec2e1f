"use client";

import { useState } from "react";
import { useMe, useTenant } from "@/components/shell/context";
import { Button, EmptyState, ErrorBanner, PageHeader } from "@/components/ui";
import { ServerFilter } from "@/components/servers/server-filter";
import { CreateEntry } from "@/components/vault/create-entry";
import { EntryTable } from "@/components/vault/entry-table";
import { useVaultEntries } from "@/components/vault/queries";

export default function VaultPage() {
  const me = useMe();
  const { tenantId } = useTenant();
  const [serverId, setServerId] = useState("");
  const [open, setOpen] = useState(false);
  const list = useVaultEntries({ serverId: serverId || undefined, tenantId: tenantId ?? undefined });
  const canWrite = me.globalRole === "owner" || me.tenants.some((t) => t.role === "admin");
  const create = canWrite ? <Button onClick={() => setOpen(true)}>New credential</Button> : null;
  return (
    <>
      <PageHeader
        title="Credential vault"
        description="Upstream credentials the agents inject on behalf of clients (a client's own token is never forwarded upstream). Secrets are write-only: encrypted with a per-version data key, shown here only as a fingerprint and the last characters."
        actions={create}
      />
      <div className="mb-3 max-w-xs">
        <ServerFilter value={serverId} onChange={setServerId} />
      </div>
      <ErrorBanner error={list.error} />
      {list.data?.items.length === 0 ? (
        <EmptyState title="No upstream credential yet" action={create}>
          Store the API key, token, basic credentials or OAuth client of an upstream MCP server. Agents serving the server fetch it when they forward a call; rotations reach them within seconds.
        </EmptyState>
      ) : list.data ? (
        <EntryTable items={list.data.items} />
      ) : null}
      <CreateEntry open={open} onClose={() => setOpen(false)} serverId={serverId || undefined} />
    </>
  );
}
