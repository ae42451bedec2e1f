"use client";

import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useParams, useRouter } from "next/navigation";
import { useState } from "react";
import { useCanWrite, useMe } from "@/components/shell/context";
import { TrustedIssuers } from "@/components/tenants/trusted-issuers";
import { Badge, Button, Card, ConfirmButton, CopyOnce, EmptyState, ErrorBanner, Modal, PageHeader, SelectField, Table, Td, TextField, Time, FormActions } from "@/components/ui";
import { ApiError, apiFetch, keys } from "@/lib/client/api";
import type { PublicTenant } from "@/lib/client/types";

interface Member {
  userId: string;
  email: string;
  name: string;
  role: "admin" | "auditor";
  disabled: boolean;
  since: string;
}

export default function TenantPage() {
  const { tenantId } = useParams<{ tenantId: string }>();
  const me = useMe();
  const qc = useQueryClient();
  const router = useRouter();
  const canWrite = useCanWrite(tenantId);
  const tenant = useQuery({ queryKey: keys.tenants.byId(tenantId), queryFn: () => apiFetch<PublicTenant>(`/tenants/${tenantId}`) });
  const members = useQuery({ queryKey: keys.tenants.members(tenantId), queryFn: () => apiFetch<{ items: Member[] }>(`/tenants/${tenantId}/members`), enabled: tenant.isSuccess });
  const patch = useMutation({
    mutationFn: (body: object) => apiFetch<PublicTenant>(`/tenants/${tenantId}`, { method: "PATCH", body }),
    onSuccess: () => {
      void qc.invalidateQueries({ queryKey: keys.tenants.all });
      router.refresh();
    },
  });
  const [adding, setAdding] = useState(false);

  if (tenant.error) {
    return (
      <EmptyState title="Tenant not found">{tenant.error instanceof ApiError && tenant.error.status === 404 ? "It does not exist, or you are not a member of it." : tenant.error.message}</EmptyState>
    );
  }
  if (!tenant.data) return <p className="text-sm text-slate-500">Loading…</p>;
  const t = tenant.data;
  const err = patch.error instanceof ApiError ? patch.error : null;
  const invalidateMembers = () => qc.invalidateQueries({ queryKey: keys.tenants.members(tenantId) });

  return (
    <>
      <PageHeader
        title={
          <span className="flex items-center gap-2">
            {t.name} {t.status === "active" ? <Badge color="green">active</Badge> : <Badge color="red">disabled</Badge>}
          </span>
        }
        description={<code className="text-xs">{t.id}</code>}
        actions={
          me.globalRole === "owner" ? (
            t.status === "active" ? (
              <ConfirmButton
                label="Disable tenant"
                title={`Disable ${t.name}?`}
                body="Its servers can no longer be changed and its policies will stop being published. You can enable it again later."
                confirmLabel="Disable tenant"
                onConfirm={() => patch.mutateAsync({ status: "disabled" })}
              />
            ) : (
              <Button variant="secondary" onClick={() => patch.mutate({ status: "active" })}>
                Enable tenant
              </Button>
            )
          ) : null
        }
      />
      <div className="grid grid-cols-1 gap-6 lg:grid-cols-3">
        <Card title="Settings" className="lg:col-span-1">
          <form
            noValidate
            className="space-y-3"
            onSubmit={(e) => {
              e.preventDefault();
              patch.mutate({ name: String(new FormData(e.currentTarget).get("name") ?? "") });
            }}
          >
            <TextField label="Name" name="name" defaultValue={t.name} key={t.name} disabled={!canWrite} error={err?.field("name")} />
            <ErrorBanner error={err && !err.field("name") ? err : null} />
            {canWrite ? (
              <Button type="submit" busy={patch.isPending}>
                Rename
              </Button>
            ) : null}
            <p className="text-xs text-slate-500">
              Created <Time iso={t.createdAt} />
            </p>
          </form>
        </Card>
        <Card title="Members" className="lg:col-span-2" actions={canWrite ? <Button onClick={() => setAdding(true)}>Add member</Button> : null}>
          <ErrorBanner error={members.error} />
          {members.data?.items.length === 0 ? (
            <p className="text-sm text-slate-600">No member yet. Add tenant admins (manage servers, catalogues and mappings) and auditors (read-only).</p>
          ) : (
            <Table head={["User", "Role", "Since", ""]}>
              {(members.data?.items ?? []).map((m) => (
                <tr key={m.userId}>
                  <Td>
                    <div className="font-medium text-slate-900">{m.email}</div>
                    {m.disabled ? <Badge color="red">disabled</Badge> : null}
                  </Td>
                  <Td>
                    {canWrite ? (
                      <select
                        aria-label={`Role of ${m.email}`}
                        value={m.role}
                        onChange={(e) =>
                          apiFetch(`/tenants/${tenantId}/members/${m.userId}`, { method: "PATCH", body: { role: e.target.value } }).then(invalidateMembers, (x: Error) => alert(x.message))
                        }
                        className="rounded-md border-0 py-1 text-sm ring-1 ring-slate-300"
                      >
                        <option value="admin">admin</option>
                        <option value="auditor">auditor</option>
                      </select>
                    ) : (
                      <Badge color={m.role === "admin" ? "blue" : "gray"}>{m.role}</Badge>
                    )}
                  </Td>
                  <Td>
                    <Time iso={m.since} />
                  </Td>
                  <Td>
                    {canWrite ? (
                      <ConfirmButton
                        label="Remove"
                        title={`Remove ${m.email}?`}
                        body={`${m.email} loses access to ${t.name} at once. The user account itself is kept.`}
                        confirmLabel="Remove member"
                        onConfirm={() => apiFetch(`/tenants/${tenantId}/members/${m.userId}`, { method: "DELETE" }).then(invalidateMembers)}
                      />
                    ) : null}
                  </Td>
                </tr>
              ))}
            </Table>
          )}
        </Card>
        <TrustedIssuers tenantId={tenantId} tenantName={t.name} canWrite={canWrite} />
      </div>
      <AddMember tenantId={tenantId} open={adding} onClose={() => setAdding(false)} onAdded={invalidateMembers} />
    </>
  );
}

function AddMember({ tenantId, open, onClose, onAdded }: { tenantId: string; open: boolean; onClose: () => void; onAdded: () => void }) {
  const [link, setLink] = useState<string | null>(null);
  const add = useMutation({
    mutationFn: (body: object) => apiFetch<{ invitation: { url: string } | null }>(`/tenants/${tenantId}/members`, { method: "POST", body }),
    onSuccess: (r) => {
      onAdded();
      if (r.invitation) setLink(r.invitation.url);
      else onClose();
    },
  });
  const err = add.error instanceof ApiError ? add.error : null;
  const close = () => {
    setLink(null);
    add.reset();
    onClose();
  };
  return (
    <Modal open={open} onClose={close} title="Add member">
      {link ? (
        <div className="space-y-4">
          <CopyOnce
            label="The user did not exist, so it was created with this invitation link. Pass it on; they choose their own password with it (or sign in with SSO). It works once and expires."
            value={link}
          />
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
            add.mutate({ email: d.get("email"), role: d.get("role") });
          }}
        >
          <TextField label="E-mail" name="email" type="email" required autoFocus error={err?.field("email")} />
          <SelectField label="Role" name="role" defaultValue="admin" error={err?.field("role")}>
            <option value="admin">Tenant admin — manages servers, catalogues and mappings</option>
            <option value="auditor">Auditor — read-only</option>
          </SelectField>
          <ErrorBanner error={err && !err.field("email") ? err : null} />
          <FormActions onCancel={close} busy={add.isPending} submitLabel="Add member" />
        </form>
      )}
    </Modal>
  );
}
