"use client";

import { useQuery } from "@tanstack/react-query";
import { useRouter } from "next/navigation";
import { useState } from "react";
import { useMe } from "@/components/shell/context";
import { FormActions, Modal, SelectField, TextArea, TextField } from "@/components/ui";
import { ApiError, apiFetch, keys } from "@/lib/client/api";
import type { Page, PublicServer } from "@/lib/client/types";
import { baseLabels, fieldError, FormError, localIssue, type FieldLabels } from "./errors";
import { kindLabels, secretLabel, useVaultWrite, type VaultEntry } from "./queries";

type Kind = VaultEntry["kind"];

const isOAuthKind = (kind: Kind) => kind === "oauth_client_credentials" || kind === "oauth_token_exchange" || kind === "oauth_user_brokered";

/** Builds the secret the API expects for the kind from the form's fields. */
export function secretOf(kind: Kind, d: FormData) {
  if (kind === "basic") return { username: String(d.get("username") ?? ""), password: String(d.get("password") ?? "") };
  if (isOAuthKind(kind)) return { clientSecret: String(d.get("secret") ?? "") };
  return String(d.get("secret") ?? "");
}

/** The OAuth settings the API expects for an OAuth kind; blank optional fields are left out (the API reads an empty URL as an invalid one). */
function oauthOf(kind: Kind, d: FormData) {
  const text = (name: string) => String(d.get(name) ?? "").trim();
  const optional = (key: string, name: string) => (text(name) ? { [key]: text(name) } : {});
  return {
    tokenUrl: text("tokenUrl"),
    clientId: text("clientId"),
    ...optional("scope", "scope"),
    ...optional("audience", "audience"),
    authMethod: text("authMethod") || "client_secret_basic",
    ...(kind === "oauth_user_brokered" ? { ...optional("authorizationUrl", "authorizationUrl"), ...optional("issuer", "issuer") } : {}),
  };
}

/**
 * What a brokered entry lacks before anything is sent: the upstream AS's
 * authorization endpoint or its issuer (to discover it), and the token
 * endpoint; null when both are there. The API says the same (docs/upstreams.md).
 */
function missingBrokered(d: FormData): ApiError | null {
  const blank = (name: string) => String(d.get(name) ?? "").trim() === "";
  if (blank("authorizationUrl") && blank("issuer")) return localIssue("oauth.authorizationUrl", "or the issuer is required: the upstream's authorization endpoint, or its issuer to discover it");
  if (blank("tokenUrl")) return localIssue("oauth.tokenUrl", "is required: the upstream's token endpoint, where Mandate exchanges the code and refreshes tokens");
  return null;
}

/** The labels of a kind's form fields, for sentences that name them ("API key must not be empty."). */
export function labelsFor(kind: Kind): FieldLabels {
  return {
    ...baseLabels,
    secret: kind === "basic" ? "Username and password" : secretLabel(kind),
    "secret.username": "Username",
    "secret.password": "Password",
    "secret.clientSecret": "Client secret",
  };
}

/**
 * What is missing from the secret fields before anything is sent (a blank secret is never a valid one),
 * as an error shaped like the API's; null when they are filled in.
 */
export function blankSecret(kind: Kind, d: FormData): ApiError | null {
  const blank = (name: string) => String(d.get(name) ?? "").trim() === "";
  if (kind === "basic") {
    if (blank("username")) return localIssue("secret.username", `must not be empty: enter the user name the upstream expects`);
    if (blank("password")) return localIssue("secret.password", "must not be empty: enter the password");
    return null;
  }
  return blank("secret") ? localIssue("secret", `must not be empty: paste the ${secretLabel(kind)} the upstream issued`) : null;
}

/** The secret fields of a kind: password inputs, never pre-filled, never echoed back. */
export function SecretFields({ kind, error }: { kind: Kind; error?: unknown }) {
  const labels = labelsFor(kind);
  const err = (p: string) => fieldError(error, p, labels);
  if (kind === "basic") {
    return (
      <div className="grid grid-cols-2 gap-3">
        <TextField
          label="Username"
          name="username"
          autoComplete="off"
          error={err("secret.username") ?? (error instanceof ApiError && error.issues.some((i) => i.path === "secret") ? err("secret") : undefined)}
        />
        <TextField label="Password" name="password" type="password" autoComplete="new-password" error={err("secret.password")} />
      </div>
    );
  }
  return (
    <TextField
      label={secretLabel(kind)}
      name="secret"
      type="password"
      autoComplete="new-password"
      hint="Write-only: it is encrypted at once and never shown again (only a fingerprint and the last 4 characters)."
      error={err("secret")}
    />
  );
}

export function CreateEntry({ open, onClose, serverId }: { open: boolean; onClose: () => void; serverId?: string }) {
  const me = useMe();
  const router = useRouter();
  const [kind, setKind] = useState<Kind>("api_key");
  const [placementIn, setPlacementIn] = useState<"header" | "query">("header");
  const [server, setServer] = useState(serverId ?? "");
  const servers = useQuery({ queryKey: keys.servers.list({ pageSize: 100 }), queryFn: () => apiFetch<Page<PublicServer>>("/servers?pageSize=100"), enabled: open });
  const create = useVaultWrite((body: object) => apiFetch<VaultEntry>("/vault", { method: "POST", body }));
  // A problem found before sending (blank secret, no server) or the API's answer: shown the same way.
  const [local, setLocal] = useState<ApiError | null>(null);
  const error = local ?? create.error;
  const labels = labelsFor(kind);
  const err = (p: string) => fieldError(error, p, labels);
  const selected = servers.data?.items.find((s) => s.id === server);
  const tenantName = (id: string) => me.tenants.find((t) => t.id === id)?.name ?? id;
  return (
    <Modal open={open} onClose={onClose} title="New upstream credential">
      <form
        noValidate
        autoComplete="off"
        className="space-y-4"
        onSubmit={(e) => {
          e.preventDefault();
          const form = e.currentTarget;
          const d = new FormData(form);
          const interval = String(d.get("rotationIntervalDays") ?? "").trim();
          const body = {
            serverId: server,
            tenantId: d.get("tenantId") ? String(d.get("tenantId")) : null,
            name: d.get("name"),
            kind,
            ...(kind === "api_key" || d.get("placementName") ? { placement: { in: kind === "api_key" ? placementIn : "header", name: String(d.get("placementName") ?? "") } } : {}),
            ...(isOAuthKind(kind) ? { oauth: oauthOf(kind, d) } : {}),
            notes: d.get("notes"),
            owner: d.get("owner"),
            ...(interval ? { rotationIntervalDays: Number(interval) } : {}),
            secret: secretOf(kind, d),
          };
          const problem = !server
            ? localIssue("serverId", "must be chosen: pick the server this credential is for")
            : ((kind === "oauth_user_brokered" ? missingBrokered(d) : null) ?? blankSecret(kind, d));
          setLocal(problem);
          if (problem) {
            create.reset();
            return;
          }
          create.mutate(body, {
            onSuccess: (entry) => {
              form.reset();
              onClose();
              router.push(`/vault/${entry.id}`);
            },
            // The secret fields are cleared on any error too: nothing typed stays on screen longer than needed.
            onError: () => form.querySelectorAll<HTMLInputElement>("input[type=password]").forEach((i) => (i.value = "")),
          });
        }}
      >
        <div className="grid grid-cols-2 gap-3">
          <SelectField label="Server" value={server} onChange={(e) => setServer(e.target.value)} error={err("serverId")}>
            <option value="">Choose a server…</option>
            {(servers.data?.items ?? []).map((s) => (
              <option key={s.id} value={s.id}>
                {s.name}
              </option>
            ))}
          </SelectField>
          <SelectField label="For tenant" name="tenantId" error={err("tenantId")} hint="Shared: used by every tenant of the server that has no entry of its own.">
            <option value="">Shared (all tenants)</option>
            {(selected?.tenantIds ?? []).map((t) => (
              <option key={t} value={t}>
                {tenantName(t)}
              </option>
            ))}
          </SelectField>
        </div>
        <TextField label="Name" name="name" required error={err("name")} placeholder="Ticketing API key" />
        <div className="grid grid-cols-2 gap-3">
          <SelectField label="Kind" value={kind} onChange={(e) => setKind(e.target.value as Kind)} error={err("kind")}>
            {Object.entries(kindLabels).map(([k, label]) => (
              <option key={k} value={k}>
                {label}
              </option>
            ))}
          </SelectField>
          {kind === "api_key" ? (
            <SelectField label="Goes into" value={placementIn} onChange={(e) => setPlacementIn(e.target.value as "header" | "query")} error={err("placement.in")}>
              <option value="header">a header</option>
              <option value="query">a query parameter</option>
            </SelectField>
          ) : null}
        </div>
        {kind === "oauth_user_brokered" ? (
          // A user's access token always goes into the Authorization header: nothing to choose.
          err("placement") ? (
            <p role="alert" className="text-sm text-rose-700">
              {err("placement")}
            </p>
          ) : null
        ) : (
          <TextField
            label={kind === "api_key" ? (placementIn === "query" ? "Query parameter" : "Header") : "Header (default: Authorization)"}
            name="placementName"
            placeholder={kind === "api_key" ? (placementIn === "query" ? "api_key" : "x-api-key") : "authorization"}
            error={err("placement.name") ?? err("placement")}
          />
        )}
        {kind === "oauth_user_brokered" ? <BrokeredFields err={err} /> : null}
        {kind === "oauth_client_credentials" || kind === "oauth_token_exchange" ? (
          <fieldset className="space-y-3 rounded-md border border-slate-200 p-3">
            <legend className="px-1 text-sm font-medium text-slate-700">OAuth client credentials (the agent exchanges them for an access token)</legend>
            <TextField label="Token endpoint" name="tokenUrl" placeholder="https://auth.example.com/oauth/token" error={err("oauth.tokenUrl") ?? err("oauth")} />
            <div className="grid grid-cols-2 gap-3">
              <TextField label="Client id" name="clientId" error={err("oauth.clientId")} />
              <SelectField label="Client authentication" name="authMethod" defaultValue="client_secret_basic">
                <option value="client_secret_basic">client_secret_basic</option>
                <option value="client_secret_post">client_secret_post</option>
              </SelectField>
              <TextField label="Scope (optional)" name="scope" />
              <TextField label={kind === "oauth_token_exchange" ? "Audience (the upstream resource)" : "Audience (optional)"} name="audience" required={kind === "oauth_token_exchange"} />
            </div>
          </fieldset>
        ) : null}
        <SecretFields kind={kind} error={error} />
        <div className="grid grid-cols-2 gap-3">
          <TextField label="Owner" name="owner" placeholder="platform-team@example.com" error={err("owner")} />
          <TextField label="Rotate every (days)" name="rotationIntervalDays" type="number" min={1} max={3650} error={err("rotationIntervalDays")} />
        </div>
        <TextArea label="Notes" name="notes" rows={2} error={err("notes")} />
        <FormError error={error} labels={labels} />
        <FormActions onCancel={onClose} busy={create.isPending} submitLabel="Store credential" />
      </form>
    </Modal>
  );
}

/**
 * The OAuth settings of a brokered per-user entry: Mandate is the OAuth client
 * at the upstream's authorization server (docs/upstreams.md). The client
 * secret is the entry's write-only secret (SecretFields).
 */
function BrokeredFields({ err }: { err: (path: string) => string | undefined }) {
  const callback = typeof window === "undefined" ? "/api/v1/admin/connections/callback" : `${window.location.origin}/api/v1/admin/connections/callback`;
  return (
    <fieldset className="space-y-3 rounded-md border border-slate-200 p-3">
      <legend className="px-1 text-sm font-medium text-slate-700">Upstream authorization server (each user connects their own account once)</legend>
      <p className="text-xs text-slate-600">
        Register Mandate there as a confidential client (authorization code with PKCE, refresh tokens) with the redirect URI <code className="break-all">{callback}</code>. A user&apos;s access token
        goes into the Authorization header.
      </p>
      <TextField
        label="Authorization endpoint"
        name="authorizationUrl"
        placeholder="https://auth.example.com/oauth/authorize"
        hint="Or leave it blank and give the issuer: the endpoint is then discovered from its metadata."
        error={err("oauth.authorizationUrl") ?? err("oauth")}
      />
      <TextField
        label="Issuer (optional)"
        name="issuer"
        placeholder="https://auth.example.com"
        hint="When given, the authorization response's iss must equal it (RFC 9207, mix-up defence)."
        error={err("oauth.issuer")}
      />
      <TextField label="Token endpoint" name="tokenUrl" placeholder="https://auth.example.com/oauth/token" error={err("oauth.tokenUrl")} />
      <div className="grid grid-cols-2 gap-3">
        <TextField label="Client id" name="clientId" error={err("oauth.clientId")} />
        <SelectField label="Client authentication" name="authMethod" defaultValue="client_secret_basic" error={err("oauth.authMethod")}>
          <option value="client_secret_basic">client_secret_basic</option>
          <option value="client_secret_post">client_secret_post</option>
        </SelectField>
        <TextField label="Scope (optional)" name="scope" placeholder="repo:read" error={err("oauth.scope")} />
        <TextField label="Resource or audience (optional)" name="audience" placeholder="https://api.example.com/mcp" hint="A URI is sent as the RFC 8707 resource." error={err("oauth.audience")} />
      </div>
    </fieldset>
  );
}
