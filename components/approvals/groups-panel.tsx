"use client";

import { useState } from "react";
import { useCanWrite } from "@/components/shell/context";
import { Button, Card, ErrorBanner, TextField } from "@/components/ui";
import { useApprovalSettings, useGroupMutations, useGroups } from "./queries";

/**
 * A tenant's approver groups (the names `@approval("…")` uses) and its approval settings.
 * Members must hold a role in the tenant; a member may never approve their own call.
 */
export function GroupsPanel({ tenantId }: { tenantId: string }) {
  const groups = useGroups(tenantId);
  const m = useGroupMutations(tenantId);
  const canWrite = useCanWrite(tenantId);
  const [name, setName] = useState("");
  const [emails, setEmails] = useState<Record<string, string>>({});
  return (
    <Card title="Approver groups">
      <p className="mb-3 text-sm text-slate-600">
        A policy asks for approval with <code>@approval(&quot;group-name&quot;)</code> on a forbid. A member of a group it names may approve; nobody may approve their own call.
      </p>
      <ErrorBanner error={groups.error ?? m.create.error ?? m.addMember.error ?? m.remove.error ?? m.removeMember.error} />
      <ul className="divide-y divide-slate-100 text-sm">
        {(groups.data ?? []).map((g) => (
          <li key={g.id} className="py-2" data-testid={`group-${g.name}`}>
            <div className="flex items-center justify-between">
              <span className="font-mono font-medium">{g.name}</span>
              {canWrite ? (
                <Button variant="secondary" onClick={() => m.remove.mutate(g.id)}>
                  Delete group
                </Button>
              ) : null}
            </div>
            <ul className="mt-1 space-y-1">
              {g.members.map((u) => (
                <li key={u.userId} className="flex items-center justify-between text-slate-700">
                  <span>{u.email}</span>
                  {canWrite ? (
                    <button type="button" className="text-rose-700 hover:underline" onClick={() => m.removeMember.mutate({ groupId: g.id, userId: u.userId })}>
                      Remove
                    </button>
                  ) : null}
                </li>
              ))}
              {g.members.length === 0 ? <li className="text-slate-500">No members yet: nobody can approve for this group.</li> : null}
            </ul>
            {canWrite ? (
              <form
                className="mt-2 flex items-end gap-2"
                onSubmit={(e) => {
                  e.preventDefault();
                  m.addMember.mutate({ groupId: g.id, email: emails[g.id] ?? "" }, { onSuccess: () => setEmails({ ...emails, [g.id]: "" }) });
                }}
              >
                <TextField label={`Add a member to ${g.name} (e-mail)`} type="email" value={emails[g.id] ?? ""} onChange={(e) => setEmails({ ...emails, [g.id]: e.target.value })} />
                <Button type="submit" variant="secondary">
                  Add
                </Button>
              </form>
            ) : null}
          </li>
        ))}
      </ul>
      {canWrite ? (
        <form
          className="mt-3 flex items-end gap-2"
          onSubmit={(e) => {
            e.preventDefault();
            m.create.mutate(name, { onSuccess: () => setName("") });
          }}
        >
          <TextField label="New group name" value={name} maxLength={100} onChange={(e) => setName(e.target.value)} placeholder="finance-approvers" />
          <Button type="submit">Create group</Button>
        </form>
      ) : null}
      <SettingsForm tenantId={tenantId} canWrite={canWrite} />
    </Card>
  );
}

function SettingsForm({ tenantId, canWrite }: { tenantId: string; canWrite: boolean }) {
  const { q, save } = useApprovalSettings(tenantId);
  const [ttl, setTtl] = useState<string>("");
  const [hook, setHook] = useState("");
  if (!q.data) return <ErrorBanner error={q.error} />;
  return (
    <form
      className="mt-4 space-y-2 border-t border-slate-100 pt-3 text-sm"
      onSubmit={(e) => {
        e.preventDefault();
        save.mutate({ ...(ttl ? { requestTtlMinutes: Number(ttl) } : {}), ...(hook ? { webhookUrl: hook } : {}) }, { onSuccess: () => (setTtl(""), setHook("")) });
      }}
    >
      <p className="text-slate-600">
        Requests wait {q.data.requestTtlMinutes} minutes; an approval of one call holds as long. Webhook: {q.data.webhook ?? "none"}.
      </p>
      {canWrite ? (
        <>
          <TextField label="Minutes a request waits" type="number" min={1} max={1440} value={ttl} onChange={(e) => setTtl(e.target.value)} placeholder={String(q.data.requestTtlMinutes)} />
          <TextField
            label="Slack-compatible webhook URL (write-only)"
            type="url"
            value={hook}
            onChange={(e) => setHook(e.target.value)}
            hint="Told of each new request. Stored sealed like a vault secret; only its host is shown."
          />
          <ErrorBanner error={save.error} />
          <Button type="submit" variant="secondary" busy={save.isPending}>
            Save settings
          </Button>
          {q.data.webhook ? (
            <Button type="button" variant="secondary" onClick={() => save.mutate({ webhookUrl: "" })}>
              Remove webhook
            </Button>
          ) : null}
        </>
      ) : null}
    </form>
  );
}
