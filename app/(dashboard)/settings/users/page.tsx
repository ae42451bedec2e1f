"use client";

import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useState } from "react";
import { useMe } from "@/components/shell/context";
import { Badge, Button, CopyOnce, ErrorBanner, Modal, PageHeader, Pager, SearchBox, SelectField, Table, Td, TextField, Time, FormActions } from "@/components/ui";
import { ApiError, apiFetch, keys, qs } from "@/lib/client/api";
import type { Page, PublicUser } from "@/lib/client/types";

export default function UsersPage() {
  const me = useMe();
  const qc = useQueryClient();
  const [q, setQ] = useState("");
  const [page, setPage] = useState(1);
  const [open, setOpen] = useState(false);
  const [reinvite, setReinvite] = useState<string | null>(null);
  const params = { q, page, pageSize: 25 };
  const list = useQuery({ queryKey: keys.users.list(params), queryFn: () => apiFetch<Page<PublicUser>>(`/users${qs(params)}`) });
  const isOwner = me.globalRole === "owner";
  const patch = (id: string, body: object) =>
    apiFetch(`/users/${id}`, { method: "PATCH", body }).then(
      () => qc.invalidateQueries({ queryKey: ["users"] }),
      (e: Error) => alert(e.message),
    );
  return (
    <>
      <PageHeader
        title="Users"
        description="Everyone who can sign in. Owners manage every tenant; global auditors read every tenant; members reach only the tenants they belong to."
        actions={isOwner ? <Button onClick={() => setOpen(true)}>New user</Button> : null}
      />
      <div className="mb-3">
        <SearchBox value={q} onChange={(v) => (setQ(v), setPage(1))} placeholder="Search by e-mail or name" />
      </div>
      <ErrorBanner error={list.error} />
      <Table head={["User", "Global role", "Status", "Last sign-in"]}>
        {(list.data?.items ?? []).map((u) => (
          <tr key={u.id}>
            <Td>
              <div className="font-medium text-slate-900">{u.email}</div>
              <div className="text-xs text-slate-500">{u.name}</div>
            </Td>
            <Td>
              {isOwner ? (
                <select
                  aria-label={`Global role of ${u.email}`}
                  value={u.role}
                  onChange={(e) => patch(u.id, { role: e.target.value })}
                  className="rounded-md border-0 py-1 text-sm ring-1 ring-slate-300"
                >
                  <option value="owner">owner</option>
                  <option value="auditor">auditor</option>
                  <option value="member">member</option>
                </select>
              ) : (
                u.role
              )}
            </Td>
            <Td>
              {u.disabled ? <Badge color="red">disabled</Badge> : !u.hasPassword && !u.ssoLinked ? <Badge color="amber">invited</Badge> : <Badge color="green">active</Badge>}{" "}
              {isOwner ? (
                <Button variant="ghost" onClick={() => patch(u.id, { disabled: !u.disabled })}>
                  {u.disabled ? "Enable" : "Disable"}
                </Button>
              ) : null}
              {isOwner && !u.disabled && !u.hasPassword && !u.ssoLinked ? (
                <Button variant="ghost" onClick={() => setReinvite(u.id)}>
                  New invitation link
                </Button>
              ) : null}
            </Td>
            <Td>
              <Time iso={u.lastLoginAt} />
            </Td>
          </tr>
        ))}
      </Table>
      {list.data ? <Pager page={page} pageSize={25} total={list.data.total} onPage={setPage} /> : null}
      <NewUser open={open} onClose={() => setOpen(false)} />
      <Reinvite userId={reinvite} onClose={() => setReinvite(null)} />
    </>
  );
}

function NewUser({ open, onClose }: { open: boolean; onClose: () => void }) {
  const qc = useQueryClient();
  const [link, setLink] = useState<string | null>(null);
  const create = useMutation({
    mutationFn: (body: object) => apiFetch<{ invitation: { url: string; expiresAt: string } }>("/users", { method: "POST", body }),
    onSuccess: (r) => {
      void qc.invalidateQueries({ queryKey: ["users"] });
      setLink(r.invitation.url);
    },
  });
  const err = create.error instanceof ApiError ? create.error : null;
  const close = () => {
    setLink(null);
    create.reset();
    onClose();
  };
  return (
    <Modal open={open} onClose={close} title="New user">
      {link ? (
        <div className="space-y-4">
          <CopyOnce label="Invitation link for the new user: pass it on; they choose their own password with it (or sign in with SSO). It works once and expires." value={link} />
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
            create.mutate({ email: d.get("email"), name: d.get("name"), role: d.get("role") });
          }}
        >
          <TextField label="E-mail" name="email" type="email" required autoFocus error={err?.field("email")} />
          <TextField label="Name" name="name" error={err?.field("name")} />
          <SelectField label="Global role" name="role" defaultValue="member">
            <option value="member">Member (add to tenants afterwards)</option>
            <option value="auditor">Auditor (reads every tenant)</option>
            <option value="owner">Owner (everything)</option>
          </SelectField>
          <ErrorBanner error={err} />
          <FormActions onCancel={close} busy={create.isPending} submitLabel="Create user" />
        </form>
      )}
    </Modal>
  );
}

/** A fresh invitation link for a user who has not set up sign-in yet; the earlier link stops working. */
function Reinvite({ userId, onClose }: { userId: string | null; onClose: () => void }) {
  const issue = useMutation({ mutationFn: (id: string) => apiFetch<{ url: string }>(`/users/${id}/invitation`, { method: "POST" }) });
  const close = () => {
    issue.reset();
    onClose();
  };
  return (
    <Modal open={userId !== null} onClose={close} title="New invitation link">
      <div className="space-y-4">
        {issue.data ? (
          <CopyOnce label="Pass this link on; the user chooses their password with it (or signs in with SSO). Earlier links no longer work." value={issue.data.url} />
        ) : (
          <p className="text-sm text-slate-700">Any earlier invitation link of this user stops working.</p>
        )}
        <ErrorBanner error={issue.error} />
        <div className="flex justify-end gap-2">
          {issue.data ? (
            <Button onClick={close}>Done</Button>
          ) : (
            <>
              <Button variant="secondary" onClick={close}>
                Cancel
              </Button>
              <Button busy={issue.isPending} onClick={() => userId && issue.mutate(userId)}>
                Create link
              </Button>
            </>
          )}
        </div>
      </div>
    </Modal>
  );
}
