"use client";

import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useState } from "react";
import { useMe } from "@/components/shell/context";
import { Badge, Button, ConfirmButton, CopyOnce, EmptyState, ErrorBanner, Modal, PageHeader, SelectField, Table, Td, TextField, Time, FormActions } from "@/components/ui";
import { ApiError, apiFetch, keys } from "@/lib/client/api";

interface TokenRow {
  id: string;
  name: string;
  role: "owner" | "admin" | "auditor";
  tenantId: string | null;
  hint: string;
  createdAt: string;
  expiresAt: string | null;
  lastUsedAt: string | null;
  revokedAt: string | null;
}

export default function TokensPage() {
  const me = useMe();
  const qc = useQueryClient();
  const [open, setOpen] = useState(false);
  const list = useQuery({ queryKey: keys.tokens.all, queryFn: () => apiFetch<{ items: TokenRow[] }>("/tokens") });
  const tenantName = (id: string | null) => (id ? (me.tenants.find((t) => t.id === id)?.name ?? id) : "all tenants");
  const newButton = <Button onClick={() => setOpen(true)}>New API token</Button>;
  return (
    <>
      <PageHeader
        title="API tokens"
        description="Automation drives Mandate through the admin API with these tokens. A token holds one role in one tenant (or all tenants for owners) and never more than its creator holds."
        actions={newButton}
      />
      <ErrorBanner error={list.error} />
      {list.data?.items.length === 0 ? (
        <EmptyState title="No API token yet" action={newButton}>
          Create a token for a CI pipeline or a script. It is shown once; Mandate keeps only its hash.
        </EmptyState>
      ) : (
        <Table head={["Name", "Role", "Scope", "Token", "Last used", "Expires", ""]}>
          {(list.data?.items ?? []).map((t) => (
            <tr key={t.id}>
              <Td className="font-medium text-slate-900">{t.name}</Td>
              <Td>
                <Badge color={t.role === "auditor" ? "gray" : "blue"}>{t.role}</Badge>
              </Td>
              <Td>{tenantName(t.tenantId)}</Td>
              <Td>
                <code className="text-xs">{t.hint}</code>
              </Td>
              <Td>
                <Time iso={t.lastUsedAt} />
              </Td>
              <Td>{t.expiresAt ? <Time iso={t.expiresAt} /> : "never"}</Td>
              <Td>
                {t.revokedAt ? (
                  <Badge color="red">revoked</Badge>
                ) : (
                  <ConfirmButton
                    label="Revoke"
                    title={`Revoke ${t.name}?`}
                    body="Requests with this token fail from now on. This cannot be undone; create a new token instead."
                    confirmLabel="Revoke token"
                    onConfirm={() => apiFetch(`/tokens/${t.id}`, { method: "DELETE" }).then(() => qc.invalidateQueries({ queryKey: keys.tokens.all }))}
                  />
                )}
              </Td>
            </tr>
          ))}
        </Table>
      )}
      <CreateToken open={open} onClose={() => setOpen(false)} />
    </>
  );
}

function CreateToken({ open, onClose }: { open: boolean; onClose: () => void }) {
  const me = useMe();
  const qc = useQueryClient();
  const [secret, setSecret] = useState<string | null>(null);
  const create = useMutation({
    mutationFn: (body: object) => apiFetch<{ token: string }>("/tokens", { method: "POST", body }),
    onSuccess: (r) => {
      setSecret(r.token);
      void qc.invalidateQueries({ queryKey: keys.tokens.all });
    },
  });
  const err = create.error instanceof ApiError ? create.error : null;
  const close = () => {
    setSecret(null);
    create.reset();
    onClose();
  };
  return (
    <Modal open={open} onClose={close} title="New API token">
      {secret ? (
        <div className="space-y-4">
          <CopyOnce label="Copy the token now." value={secret} />
          <div className="flex justify-end">
            <Button onClick={close}>Done</Button>
          </div>
        </div>
      ) : (
        <form
          noValidate
          className="space-y-4"
          onSubmit={(e) => {
            e.preventDefault();
            const d = new FormData(e.currentTarget);
            const days = Number(d.get("expires"));
            create.mutate({ name: d.get("name"), role: d.get("role"), tenantId: d.get("tenantId") || null, expiresInDays: days > 0 ? days : null });
          }}
        >
          <TextField label="Name" name="name" required autoFocus error={err?.field("name")} placeholder="ci-pipeline" />
          <SelectField label="Role" name="role" defaultValue="admin" error={err?.field("role")}>
            <option value="admin">Tenant admin</option>
            <option value="auditor">Auditor (read-only)</option>
            {me.globalRole === "owner" ? <option value="owner">Owner (every tenant)</option> : null}
          </SelectField>
          <SelectField label="Tenant" name="tenantId" defaultValue={me.tenants[0]?.id ?? ""} error={err?.field("tenantId")} hint="Owner tokens and global auditor tokens have no tenant.">
            {me.globalRole !== "member" ? <option value="">All tenants</option> : null}
            {me.tenants.map((t) => (
              <option key={t.id} value={t.id}>
                {t.name}
              </option>
            ))}
          </SelectField>
          <SelectField label="Expires" name="expires" defaultValue="90">
            <option value="30">in 30 days</option>
            <option value="90">in 90 days</option>
            <option value="365">in a year</option>
            <option value="0">never</option>
          </SelectField>
          <ErrorBanner error={err} />
          <FormActions onCancel={close} busy={create.isPending} submitLabel="Create token" />
        </form>
      )}
    </Modal>
  );
}
