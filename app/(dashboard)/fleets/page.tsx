"use client";

import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import Link from "next/link";
import { useRouter } from "next/navigation";
import { useState } from "react";
import { useMe } from "@/components/shell/context";
import { Badge, Button, EmptyState, ErrorBanner, Modal, PageHeader, Table, Td, TextArea, TextField, Time, FormActions } from "@/components/ui";
import { ApiError, apiFetch, keys } from "@/lib/client/api";
import type { Page, PublicServer } from "@/lib/client/types";

interface FleetRow {
  id: string;
  name: string;
  description: string;
  activeRevision: number | null;
  serverIds: string[];
  agentCount: number;
  updatedAt: string;
}

export default function FleetsPage() {
  const me = useMe();
  const [open, setOpen] = useState(false);
  const list = useQuery({ queryKey: keys.fleets.all, queryFn: () => apiFetch<{ items: FleetRow[] }>("/fleets") });
  const isOwner = me.globalRole === "owner";
  const create = isOwner ? <Button onClick={() => setOpen(true)}>New fleet</Button> : null;
  return (
    <>
      <PageHeader
        title="Fleets & bundles"
        description="A fleet is a group of data-plane agents serving a set of MCP servers. Each publish compiles the fleet's servers, policies and tests into one signed bundle that its agents pull and enforce."
        actions={create}
      />
      <ErrorBanner error={list.error} />
      {list.data?.items.length === 0 ? (
        <EmptyState title="No fleet yet" action={create}>
          Create a fleet, choose the MCP servers its agents front, then enroll agents with a one-time token and publish the first bundle.
        </EmptyState>
      ) : (
        <Table head={["Fleet", "Servers", "Agents", "Live revision", "Updated"]}>
          {(list.data?.items ?? []).map((f) => (
            <tr key={f.id} data-testid={`fleet-row-${f.name}`}>
              <Td>
                <Link href={`/fleets/${f.id}`} className="font-medium text-indigo-700 hover:underline">
                  {f.name}
                </Link>
                {f.description ? <div className="text-xs text-slate-500">{f.description}</div> : null}
              </Td>
              <Td>{f.serverIds.length}</Td>
              <Td>{f.agentCount}</Td>
              <Td>{f.activeRevision ? <Badge color="green">rev {f.activeRevision}</Badge> : <Badge color="amber">nothing published</Badge>}</Td>
              <Td>
                <Time iso={f.updatedAt} />
              </Td>
            </tr>
          ))}
        </Table>
      )}
      <CreateFleet open={open} onClose={() => setOpen(false)} />
    </>
  );
}

function CreateFleet({ open, onClose }: { open: boolean; onClose: () => void }) {
  const qc = useQueryClient();
  const router = useRouter();
  const servers = useQuery({ queryKey: keys.servers.list({ pageSize: 100 }), queryFn: () => apiFetch<Page<PublicServer>>("/servers?pageSize=100"), enabled: open });
  const create = useMutation({
    mutationFn: (body: object) => apiFetch<{ id: string }>("/fleets", { method: "POST", body }),
    onSuccess: (f) => {
      void qc.invalidateQueries({ queryKey: keys.fleets.all });
      onClose();
      router.push(`/fleets/${f.id}`);
    },
  });
  const err = create.error instanceof ApiError ? create.error : null;
  return (
    <Modal open={open} onClose={onClose} title="New fleet">
      <form
        noValidate
        className="space-y-4"
        onSubmit={(e) => {
          e.preventDefault();
          const d = new FormData(e.currentTarget);
          create.mutate({ name: d.get("name"), description: d.get("description"), serverIds: d.getAll("serverIds") });
        }}
      >
        <TextField label="Name" name="name" required autoFocus error={err?.field("name")} placeholder="edge-eu" />
        <TextArea label="Description" name="description" rows={2} />
        <fieldset>
          <legend className="text-sm font-medium text-slate-700">Servers this fleet fronts</legend>
          <div className="mt-2 max-h-48 space-y-1 overflow-y-auto">
            {(servers.data?.items ?? []).map((s) => (
              <label key={s.id} className="flex items-center gap-2 text-sm">
                <input type="checkbox" name="serverIds" value={s.id} /> {s.name} <code className="text-xs text-slate-500">{s.resourceUri}</code>
              </label>
            ))}
            {servers.data?.items.length === 0 ? <p className="text-sm text-slate-500">Register a server first.</p> : null}
          </div>
          {err?.field("serverIds") ? <p className="text-xs text-rose-600">{err.field("serverIds")}</p> : null}
        </fieldset>
        <ErrorBanner error={err} />
        <FormActions onCancel={onClose} busy={create.isPending} submitLabel="Create fleet" />
      </form>
    </Modal>
  );
}
