"use client";

import { useMutation, useQueryClient } from "@tanstack/react-query";
import { useRouter } from "next/navigation";
import { useState } from "react";
import { useMe, useTenant } from "@/components/shell/context";
import { Button, Card, ErrorBanner, PageHeader, SelectField, TextArea, TextField } from "@/components/ui";
import { ApiError, apiFetch, keys } from "@/lib/client/api";
import type { PublicServer } from "@/lib/client/types";

const splitList = (s: string) =>
  s
    .split(/[\s,]+/)
    .map((x) => x.trim())
    .filter(Boolean);

export default function NewServerPage() {
  const me = useMe();
  const { tenantId } = useTenant();
  const router = useRouter();
  const qc = useQueryClient();
  const writable = me.tenants.filter((t) => t.status === "active" && (t.role === "owner" || t.role === "admin"));
  const [err, setErr] = useState<ApiError | null>(null);
  const create = useMutation({
    mutationFn: (body: unknown) => apiFetch<PublicServer>("/servers", { method: "POST", body }),
    onSuccess: (s) => {
      void qc.invalidateQueries({ queryKey: keys.servers.all });
      router.push(`/servers/${s.id}`);
    },
    onError: (e) => setErr(e instanceof ApiError ? e : new ApiError(0, "error", String(e))),
  });
  const f = (p: string) => err?.field(p);
  return (
    <>
      <PageHeader
        title="Register an MCP server"
        description="The resource URI is the server's canonical identifier: tokens must carry it as their audience (RFC 8707), and agents serve its Protected Resource Metadata (RFC 9728)."
      />
      <Card>
        <form
          noValidate
          className="grid max-w-2xl gap-4"
          onSubmit={(e) => {
            e.preventDefault();
            const d = new FormData(e.currentTarget);
            const issuer = String(d.get("issuer") ?? "").trim();
            setErr(null);
            create.mutate({
              tenantId: d.get("tenantId"),
              name: d.get("name"),
              description: d.get("description"),
              resourceUri: d.get("resourceUri"),
              upstreamUrl: d.get("upstreamUrl"),
              scopes: splitList(String(d.get("scopes") ?? "")),
              issuers: issuer ? [{ issuer, discovery: true, algorithms: splitList(String(d.get("algorithms") ?? "RS256")) }] : [],
            });
          }}
        >
          <SelectField label="Owning tenant" name="tenantId" defaultValue={tenantId ?? writable[0]?.id} error={f("tenantId")} hint="Admins of this tenant manage the server.">
            {writable.map((t) => (
              <option key={t.id} value={t.id}>
                {t.name}
              </option>
            ))}
          </SelectField>
          <TextField label="Name" name="name" required error={f("name")} placeholder="Ticket desk" />
          <TextArea label="Description" name="description" rows={2} error={f("description")} />
          <TextField
            label="Resource URI"
            name="resourceUri"
            required
            error={f("resourceUri")}
            placeholder="https://mcp.example.com/tickets"
            hint="Absolute https URI, no fragment or query. It is normalized (lowercase host, no trailing slash)."
          />
          <TextField
            label="Upstream URL"
            name="upstreamUrl"
            required
            error={f("upstreamUrl")}
            placeholder="http://tickets.internal:3100/mcp"
            hint="The Streamable HTTP endpoint the agent forwards to."
          />
          <TextField label="Supported scopes" name="scopes" error={f("scopes")} placeholder="tickets:read tickets:write" hint="Separated by spaces or commas." />
          <TextField
            label="Authorization server (optional)"
            name="issuer"
            error={f("issuers")}
            placeholder="https://auth.example.com"
            hint="Advertised in the server's metadata and trusted by the owning tenant (its tenant page sets how tokens map to it)."
          />
          <TextField label="Accepted algorithms" name="algorithms" defaultValue="RS256 ES256" error={f("issuers.0.algorithms")} />
          <ErrorBanner error={err} />
          <div>
            <Button type="submit" busy={create.isPending}>
              Register server
            </Button>
          </div>
        </form>
      </Card>
    </>
  );
}
