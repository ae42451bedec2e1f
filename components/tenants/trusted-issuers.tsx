"use client";

import { useState } from "react";
import { Badge, Button, Card, ConfirmButton, ErrorBanner, FormActions, Modal, SelectField, Table, Td, TextArea, TextField } from "@/components/ui";
import { ApiError, apiFetch } from "@/lib/client/api";
import { claimAt, mapsToTenant, stringClaim, type TenantMappingRule } from "@/lib/enforcement/claims";
import { useTenantIssuers, useTrustWrite, type TenantIssuer } from "./queries";

const split = (v: string) =>
  v
    .split(/[\s,]+/)
    .map((x) => x.trim())
    .filter(Boolean);

/** "Trusted issuers" of a tenant: trust is granted here, by the tenant's own admins, never by a server's owner. */
export function TrustedIssuers({ tenantId, tenantName, canWrite }: { tenantId: string; tenantName: string; canWrite: boolean }) {
  const list = useTenantIssuers(tenantId);
  const remove = useTrustWrite(tenantId, (id: string) => apiFetch(`/tenants/${tenantId}/issuers/${id}`, { method: "DELETE" }));
  const [editing, setEditing] = useState<TenantIssuer | "new" | null>(null);
  const items = list.data?.items ?? [];
  return (
    <Card title={`Trusted issuers (${items.length})`} className="lg:col-span-3" actions={canWrite ? <Button onClick={() => setEditing("new")}>Trust an issuer</Button> : null}>
      <ErrorBanner error={list.error ?? remove.error} />
      {list.data && items.length === 0 ? (
        <p className="text-sm text-slate-600">
          {tenantName} trusts no issuer: agents refuse every token for this tenant. A token acts for {tenantName} only through an issuer listed here, verified with the keys set here, and mapped by the
          rule set here.
        </p>
      ) : (
        <Table head={["Issuer", "Keys", "Maps to this tenant when", "Options", ""]}>
          {items.map((i) => (
            <tr key={i.id}>
              <Td>
                <code className="text-xs">{i.issuer}</code>
              </Td>
              <Td className="text-xs">
                {i.jwksUri ? <code>{i.jwksUri}</code> : "discovery"} · {i.algorithms.join(" ")}
              </Td>
              <Td className="text-xs">{mappingText(i.tenantMapping)}</Td>
              <Td>
                {i.requireTyp ? <Badge color="blue">typ at+jwt</Badge> : null} {i.revocationEndpoint ? <Badge>RFC 7009</Badge> : null}
              </Td>
              <Td>
                {canWrite ? (
                  <span className="flex gap-2">
                    <Button variant="secondary" onClick={() => setEditing(i)}>
                      Edit
                    </Button>
                    <ConfirmButton
                      label="Remove"
                      title={`Stop trusting ${i.issuer}?`}
                      body={`Agents refuse every token of this issuer for ${tenantName} at once. Other tenants' trust is not affected.`}
                      confirmLabel="Stop trusting"
                      onConfirm={() => remove.mutateAsync(i.id)}
                    />
                  </span>
                ) : null}
              </Td>
            </tr>
          ))}
        </Table>
      )}
      <p className="mt-3 text-xs text-slate-500">Removing or changing an issuer withdraws the old entry from agents at once; a new or changed entry reaches them with the next publish.</p>
      {editing ? <IssuerForm tenantId={tenantId} entry={editing === "new" ? null : editing} onClose={() => setEditing(null)} /> : null}
    </Card>
  );
}

function mappingText(m: TenantMappingRule): string {
  return m.mode === "issuer" ? "every token of this issuer" : `${m.claim} is ${m.values.join(" or ")}`;
}

function IssuerForm({ tenantId, entry, onClose }: { tenantId: string; entry: TenantIssuer | null; onClose: () => void }) {
  const [mode, setMode] = useState<"claim" | "issuer">(entry?.tenantMapping.mode ?? "claim");
  const [mapClaim, setMapClaim] = useState(entry?.tenantMapping.mode === "claim" ? entry.tenantMapping.claim : "tenant");
  const [mapValues, setMapValues] = useState(entry?.tenantMapping.mode === "claim" ? entry.tenantMapping.values.join(" ") : tenantId);
  const [claims, setClaims] = useState(entry?.claims ?? { user: "sub", client: "client_id", scopes: "scope", groups: "groups" });
  const save = useTrustWrite(tenantId, (body: object) =>
    entry ? apiFetch(`/tenants/${tenantId}/issuers/${entry.id}`, { method: "PUT", body }) : apiFetch(`/tenants/${tenantId}/issuers`, { method: "POST", body }),
  );
  const err = save.error instanceof ApiError ? save.error : null;
  const rule: TenantMappingRule = mode === "issuer" ? { mode } : { mode, claim: mapClaim, values: split(mapValues) };
  return (
    <Modal open onClose={onClose} title={entry ? "Edit trusted issuer" : "Trust an issuer"}>
      <form
        noValidate
        className="space-y-3"
        onSubmit={(e) => {
          e.preventDefault();
          const d = new FormData(e.currentTarget);
          const jwksUri = String(d.get("jwksUri") ?? "").trim();
          const revocationEndpoint = String(d.get("revocationEndpoint") ?? "").trim();
          save.mutate(
            {
              issuer: String(d.get("issuer") ?? "").trim(),
              ...(jwksUri ? { jwksUri } : {}),
              discovery: d.get("discovery") === "on",
              algorithms: split(String(d.get("algorithms") ?? "")),
              claims,
              tenantMapping: rule,
              requireTyp: d.get("requireTyp") === "on" ? "at+jwt" : null,
              ...(revocationEndpoint ? { revocationEndpoint } : {}),
            },
            { onSuccess: onClose },
          );
        }}
      >
        <TextField label="Issuer (iss)" name="issuer" required defaultValue={entry?.issuer ?? ""} placeholder="https://login.example.com/tenant" error={err?.field("issuer")} />
        <TextField
          label="JWKS URI"
          name="jwksUri"
          defaultValue={entry?.jwksUri ?? ""}
          hint="Keys that verify this tenant's tokens (https, or http on loopback). Empty: discovery."
          error={err?.field("jwksUri")}
        />
        <label className="flex items-center gap-2 text-sm text-slate-700">
          <input type="checkbox" name="discovery" defaultChecked={entry?.discovery ?? true} /> Discover the JWKS from the issuer&apos;s metadata
        </label>
        <TextField label="Algorithms" name="algorithms" defaultValue={(entry?.algorithms ?? ["RS256", "ES256"]).join(" ")} error={err?.field("algorithms")} />
        <SelectField label="Tokens map to this tenant" value={mode} onChange={(e) => setMode(e.target.value as "claim" | "issuer")} error={err?.field("tenantMapping")}>
          <option value="claim">when a claim has one of these values</option>
          <option value="issuer">always: every token of this issuer is this tenant</option>
        </SelectField>
        {mode === "claim" ? (
          <div className="grid grid-cols-2 gap-3">
            <TextField label="Claim (or path)" value={mapClaim} onChange={(e) => setMapClaim(e.target.value)} hint="e.g. tid, org_id, realm_access.roles" error={err?.field("tenantMapping.claim")} />
            <TextField label="Values" value={mapValues} onChange={(e) => setMapValues(e.target.value)} hint="Separated by spaces" error={err?.field("tenantMapping.values")} />
          </div>
        ) : null}
        <div className="grid grid-cols-2 gap-3">
          {(["user", "client", "scopes", "groups"] as const).map((k) => (
            <TextField key={k} label={`${k} claim`} value={claims[k]} onChange={(e) => setClaims({ ...claims, [k]: e.target.value })} error={err?.field(`claims.${k}`)} />
          ))}
        </div>
        <label className="flex items-center gap-2 text-sm text-slate-700">
          <input type="checkbox" name="requireTyp" defaultChecked={entry?.requireTyp === "at+jwt"} /> Require typ &quot;at+jwt&quot; (RFC 9068)
        </label>
        <TextField label="Revocation endpoint (optional)" name="revocationEndpoint" defaultValue={entry?.revocationEndpoint ?? ""} error={err?.field("revocationEndpoint")} />
        <TokenCheck rule={rule} claims={claims} />
        <ErrorBanner error={err && !err.field("issuer") ? err : null} />
        <FormActions onCancel={onClose} busy={save.isPending} submitLabel={entry ? "Save" : "Trust issuer"} />
      </form>
    </Modal>
  );
}

/** Decodes a pasted token in the browser (never sent, never stored) and shows how the rule above maps it. Signatures are checked by agents only. */
function TokenCheck({ rule, claims }: { rule: TenantMappingRule; claims: Record<"user" | "client" | "scopes" | "groups", string> }) {
  const [token, setToken] = useState("");
  let out: string | null = null;
  if (token.trim()) {
    try {
      const part = token.trim().split(".")[1] ?? "";
      const json = atob(
        part
          .replace(/-/g, "+")
          .replace(/_/g, "/")
          .padEnd(Math.ceil(part.length / 4) * 4, "="),
      );
      const payload = JSON.parse(new TextDecoder().decode(Uint8Array.from(json, (c) => c.charCodeAt(0)))) as Record<string, unknown>;
      const show = (path: string) => JSON.stringify(claimAt(payload, path) ?? null).slice(0, 120);
      out = [
        `iss: ${stringClaim(payload.iss) ?? "(none)"}`,
        `maps to this tenant: ${mapsToTenant(rule, payload) ? "yes" : "no"}`,
        `user: ${show(claims.user)} · client: ${show(claims.client)}`,
        `scopes: ${show(claims.scopes)} · groups: ${show(claims.groups)}`,
      ].join("\n");
    } catch {
      out = "Not a JWT this page can decode.";
    }
  }
  return (
    <div className="space-y-1">
      <TextArea label="Check a token (decoded here, never sent)" rows={2} value={token} onChange={(e) => setToken(e.target.value)} placeholder="eyJ…" autoComplete="off" spellCheck={false} />
      {out ? <pre className="whitespace-pre-wrap rounded bg-slate-50 p-2 text-xs text-slate-700">{out}</pre> : null}
    </div>
  );
}
