"use client";

import { useMutation, useQueryClient } from "@tanstack/react-query";
import { useState, type FormEvent } from "react";
import { Button, SelectField, TextArea, TextField } from "@/components/ui";
import { apiFetch, keys } from "@/lib/client/api";
import type { PublicServer } from "@/lib/client/types";
import { Checkbox, FormError, fieldError } from "./fields";

// Mirrors allowedAlgorithms in lib/servers/schemas.ts (asymmetric only; never `none` or HMAC).
const ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"] as const;
const CLAIMS = [
  { key: "tenant", label: "Tenant claim", hint: "For the owning tenant's new trust entry: this claim must name the owning tenant's id" },
  { key: "user", label: "User claim", hint: "The end user (usually sub)" },
  { key: "client", label: "Client claim", hint: "The OAuth client (usually client_id or azp)" },
  { key: "scopes", label: "Scopes claim", hint: "Space-separated scopes (scope or scp)" },
] as const;

type Issuer = PublicServer["issuers"][number];
interface IssuerRow {
  key: number;
  issuer: string;
  jwksUri: string;
  discovery: boolean;
  algorithms: string[];
  claims: Issuer["claims"];
}

let rowKey = 0;
const toRow = (i?: Issuer): IssuerRow => ({
  key: ++rowKey,
  issuer: i?.issuer ?? "",
  jwksUri: i?.jwksUri ?? "",
  discovery: i?.discovery ?? true,
  algorithms: i?.algorithms ?? ["RS256", "ES256"],
  claims: { tenant: "tenant", user: "sub", client: "client_id", scopes: "scope", ...i?.claims },
});

/** "a, b c\nd" → ["a", "b", "c", "d"] (duplicates dropped, order kept). */
export const parseScopes = (text: string) => [...new Set(text.split(/[\s,]+/).filter(Boolean))];

const HANDLED = ["name", "description", "resourceUri", "upstreamUrl", "scopes", "dpop", "upstreamLogging"];

/** Edits a server (PATCH /servers/{id}); field issues from the API show next to their fields. */
export function ServerEditForm({ server, onDone }: { server: PublicServer; onDone: (saved: boolean) => void }) {
  const qc = useQueryClient();
  const [name, setName] = useState(server.name);
  const [description, setDescription] = useState(server.description);
  const [resourceUri, setResourceUri] = useState(server.resourceUri);
  const [upstreamUrl, setUpstreamUrl] = useState(server.upstreamUrl);
  const [scopes, setScopes] = useState(server.scopes.join(" "));
  const [dpop, setDpop] = useState<"off" | "allowed" | "required">(server.dpop ?? "off");
  const [upstreamLogging, setUpstreamLogging] = useState(server.upstreamLogging === true);
  const [issuers, setIssuers] = useState<IssuerRow[]>(() => server.issuers.map(toRow));

  const save = useMutation({
    mutationFn: () =>
      apiFetch<PublicServer>(`/servers/${encodeURIComponent(server.id)}`, {
        method: "PATCH",
        body: {
          name,
          description,
          resourceUri,
          upstreamUrl,
          scopes: parseScopes(scopes),
          dpop,
          upstreamLogging,
          issuers: issuers.map((r) => ({
            issuer: r.issuer.trim(),
            ...(r.jwksUri.trim() ? { jwksUri: r.jwksUri.trim() } : {}),
            discovery: r.discovery,
            algorithms: r.algorithms,
            claims: r.claims,
          })),
        },
      }),
    onSuccess: (updated) => {
      qc.setQueryData(keys.servers.byId(server.id), updated);
      void qc.invalidateQueries({ queryKey: keys.servers.all });
      onDone(true);
    },
  });
  const err = save.error;
  const fe = (path: string) => fieldError(err, path);

  const patchIssuer = (key: number, patch: Partial<IssuerRow>) => setIssuers((rows) => rows.map((r) => (r.key === key ? { ...r, ...patch } : r)));

  const removedScopes = server.scopes.filter((s) => !parseScopes(scopes).includes(s));

  return (
    <form
      noValidate
      className="space-y-5"
      onSubmit={(e: FormEvent) => {
        e.preventDefault();
        save.mutate();
      }}
    >
      <div className="grid gap-4 md:grid-cols-2">
        <TextField label="Name" required value={name} onChange={(e) => setName(e.target.value)} error={fe("name")} maxLength={80} />
        <TextField
          label="Resource URI"
          required
          value={resourceUri}
          onChange={(e) => setResourceUri(e.target.value)}
          error={fe("resourceUri")}
          hint="Canonical https URI agents expect in the token audience (RFC 8707); no query or fragment."
        />
        <div className="md:col-span-2">
          <TextArea label="Description" rows={2} value={description} onChange={(e) => setDescription(e.target.value)} error={fe("description")} />
        </div>
        <TextField
          label="Upstream URL"
          required
          value={upstreamUrl}
          onChange={(e) => setUpstreamUrl(e.target.value)}
          error={fe("upstreamUrl")}
          hint="Streamable HTTP endpoint of the real MCP server; used for imports and by agents."
        />
        <div>
          <TextField label="Supported scopes" value={scopes} onChange={(e) => setScopes(e.target.value)} error={fe("scopes")} hint="Separate with spaces or commas, e.g. files:read files:write" />
          {removedScopes.length ? (
            <p className="mt-1 text-xs text-amber-700" role="status">
              Removing {removedScopes.join(", ")}: grants to {removedScopes.length === 1 ? "this scope" : "these scopes"} in the scope mapping will stop applying.
            </p>
          ) : null}
        </div>
        <SelectField
          label="Sender-constrained tokens (DPoP)"
          value={dpop}
          onChange={(e) => setDpop(e.target.value as typeof dpop)}
          error={fe("dpop")}
          hint="Off: bearer tokens only. Allowed: DPoP-bound tokens must come with a valid proof; bearer tokens still pass. Required: only DPoP-bound tokens (RFC 9449)."
        >
          <option value="off">Off</option>
          <option value="allowed">Allowed</option>
          <option value="required">Required</option>
        </SelectField>
        <div>
          <Checkbox
            label="Let upstream logging pass the agent"
            hint="Callers may send logging/setLevel and receive the server's log messages (notifications/message)."
            checked={upstreamLogging}
            onChange={setUpstreamLogging}
          />
          {upstreamLogging ? (
            <p className="mt-1 text-xs text-amber-700" role="status">
              Warning: this server&apos;s log messages go to every caller that asks, and can carry the credential the agent injects and other callers&apos; data.
            </p>
          ) : null}
          {fe("upstreamLogging") ? <p className="mt-1 text-xs text-red-700">{fe("upstreamLogging")}</p> : null}
        </div>
      </div>

      <fieldset className="space-y-3">
        <legend className="text-sm font-semibold text-slate-900">Authorization servers</legend>
        <p className="text-xs text-slate-500">
          Advertised to clients in this server&apos;s authorization_servers (RFC 9728). An issuer added here is also trusted by the owning tenant, with these settings, if it does not trust it yet. It
          is never trusted for another tenant: each tenant that uses this server decides on its own tenant page which issuers may act for it.
        </p>
        {issuers.length === 0 ? (
          <p className="rounded-md border border-dashed border-slate-300 px-3 py-3 text-sm text-slate-600">
            No authorization server advertised: clients cannot discover where to get a token for this server.
          </p>
        ) : null}
        {issuers.map((r, i) => (
          <fieldset key={r.key} className="relative space-y-3 rounded-md border border-slate-200 p-3">
            <legend className="px-1 text-sm font-medium text-slate-800">Issuer {i + 1}</legend>
            <div className="absolute top-1 right-2">
              <Button
                variant="ghost"
                aria-label={`Remove issuer ${i + 1}${r.issuer ? ` (${r.issuer})` : ""}`}
                onClick={() => {
                  save.reset();
                  setIssuers((rows) => rows.filter((x) => x.key !== r.key));
                }}
              >
                Remove
              </Button>
            </div>
            <div className="grid gap-3 md:grid-cols-2">
              <TextField
                label="Issuer URL (iss)"
                required
                value={r.issuer}
                onChange={(e) => patchIssuer(r.key, { issuer: e.target.value })}
                error={fe(`issuers.${i}.issuer`)}
                placeholder="https://login.example.com"
              />
              <TextField
                label="JWKS URI"
                value={r.jwksUri}
                onChange={(e) => patchIssuer(r.key, { jwksUri: e.target.value })}
                error={fe(`issuers.${i}.jwksUri`)}
                hint={r.discovery ? "Optional: leave empty to find it through discovery" : "Required when discovery is off"}
                placeholder="https://login.example.com/.well-known/jwks.json"
              />
            </div>
            <Checkbox label="Use discovery" hint="Find the JWKS through the issuer's OpenID / OAuth metadata" checked={r.discovery} onChange={(v) => patchIssuer(r.key, { discovery: v })} />
            <fieldset>
              <legend className="text-sm font-medium text-slate-700">Signature algorithms</legend>
              <div className="mt-1 flex flex-wrap gap-x-4 gap-y-1">
                {ALGORITHMS.map((a) => (
                  <Checkbox
                    key={a}
                    label={<span className="font-mono text-xs">{a}</span>}
                    checked={r.algorithms.includes(a)}
                    onChange={(on) => patchIssuer(r.key, { algorithms: on ? ALGORITHMS.filter((x) => x === a || r.algorithms.includes(x)) : r.algorithms.filter((x) => x !== a) })}
                  />
                ))}
              </div>
              {fe(`issuers.${i}.algorithms`) ? (
                <p className="mt-1 text-xs text-rose-600" role="alert">
                  {fe(`issuers.${i}.algorithms`)}
                </p>
              ) : (
                <p className="mt-1 text-xs text-slate-500">Asymmetric algorithms only; HMAC and none are never accepted.</p>
              )}
            </fieldset>
            <fieldset>
              <legend className="text-sm font-medium text-slate-700">Claim mapping</legend>
              <div className="mt-1 grid gap-3 sm:grid-cols-2 lg:grid-cols-4">
                {CLAIMS.map((c) => (
                  <TextField
                    key={c.key}
                    label={c.label}
                    hint={c.hint}
                    value={r.claims[c.key]}
                    onChange={(e) => patchIssuer(r.key, { claims: { ...r.claims, [c.key]: e.target.value } })}
                    error={fe(`issuers.${i}.claims.${c.key}`)}
                  />
                ))}
              </div>
            </fieldset>
          </fieldset>
        ))}
        <Button variant="secondary" disabled={issuers.length >= 10} onClick={() => setIssuers((rows) => [...rows, toRow()])}>
          Add authorization server
        </Button>
      </fieldset>

      <FormError error={err} handled={[...HANDLED, ...issuers.map((_, i) => `issuers.${i}`)]} />
      <div className="flex justify-end gap-2 border-t border-slate-100 pt-4">
        <Button variant="secondary" onClick={() => onDone(false)}>
          Cancel
        </Button>
        <Button type="submit" busy={save.isPending}>
          Save changes
        </Button>
      </div>
    </form>
  );
}
