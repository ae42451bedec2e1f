"use client";

import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import Link from "next/link";
import { useRouter } from "next/navigation";
import { useState } from "react";
import { useMe } from "@/components/shell/context";
import { Badge, Button, EmptyState, ErrorBanner, Modal, PageHeader, Pager, SearchBox, Table, Td, TextField, Time, FormActions } from "@/components/ui";
import { ApiError, apiFetch, keys, qs } from "@/lib/client/api";
import type { Page, PublicTenant } from "@/lib/client/types";

export default function TenantsPage() {
  const me = useMe();
  const [q, setQ] = useState("");
  const [page, setPage] = useState(1);
  const [open, setOpen] = useState(false);
  const params = { q, page, pageSize: 25 };
  const list = useQuery({ queryKey: keys.tenants.list(params), queryFn: () => apiFetch<Page<PublicTenant>>(`/tenants${qs(params)}`) });
  const isOwner = me.globalRole === "owner";
  const createButton = isOwner ? <Button onClick={() => setOpen(true)}>New tenant</Button> : null;
  return (
    <>
      <PageHeader
        title="Tenants"
        description="A tenant is an organisation or business unit: its admins govern its MCP servers, and its users' calls are decided under its policies."
        actions={createButton}
      />
      <div className="mb-3">
        <SearchBox value={q} onChange={(v) => (setQ(v), setPage(1))} placeholder="Search tenants" />
      </div>
      <ErrorBanner error={list.error} />
      {list.data && list.data.total === 0 && !q ? (
        <EmptyState title="No tenant yet" action={createButton}>
          {isOwner ? "Create a tenant, then add its admins and register its MCP servers." : "You are not a member of any tenant."}
        </EmptyState>
      ) : (
        <>
          <Table head={["Name", "Slug", "Status", "Created"]}>
            {(list.data?.items ?? []).map((t) => (
              <tr key={t.id}>
                <Td>
                  <Link href={`/tenants/${t.id}`} className="font-medium text-indigo-700 hover:underline">
                    {t.name}
                  </Link>
                </Td>
                <Td>
                  <code className="text-xs">{t.slug}</code>
                </Td>
                <Td>{t.status === "active" ? <Badge color="green">active</Badge> : <Badge color="red">disabled</Badge>}</Td>
                <Td>
                  <Time iso={t.createdAt} />
                </Td>
              </tr>
            ))}
          </Table>
          {list.data ? <Pager page={page} pageSize={25} total={list.data.total} onPage={setPage} /> : null}
        </>
      )}
      <CreateTenant open={open} onClose={() => setOpen(false)} />
    </>
  );
}

function CreateTenant({ open, onClose }: { open: boolean; onClose: () => void }) {
  const qc = useQueryClient();
  const router = useRouter();
  const create = useMutation({
    mutationFn: (name: string) => apiFetch<PublicTenant>("/tenants", { method: "POST", body: { name } }),
    onSuccess: (t) => {
      void qc.invalidateQueries({ queryKey: keys.tenants.all });
      onClose();
      router.push(`/tenants/${t.id}`);
      router.refresh();
    },
  });
  const err = create.error instanceof ApiError ? create.error : null;
  return (
    <Modal open={open} onClose={onClose} title="New tenant">
      <form
        noValidate
        className="space-y-4"
        onSubmit={(e) => {
          e.preventDefault();
          create.mutate(String(new FormData(e.currentTarget).get("name") ?? ""));
        }}
      >
        <TextField label="Name" name="name" required autoFocus error={err?.field("name")} placeholder="Acme Support" />
        <ErrorBanner error={err && !err.field("name") ? err : null} />
        <FormActions onCancel={onClose} busy={create.isPending} submitLabel="Create tenant" />
      </form>
    </Modal>
  );
}
