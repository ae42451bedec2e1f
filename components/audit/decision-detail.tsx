"use client";

import { useQuery } from "@tanstack/react-query";
import Link from "next/link";
import { useSearchParams } from "next/navigation";
import type { ReactNode } from "react";
import { CedarCode } from "@/components/policies/cedar-code";
import { Badge, Card, ErrorBanner, PageHeader, Time } from "@/components/ui";
import { apiFetch } from "@/lib/client/api";
import { auditKeys, hrefOf, type DecisionRow, type Names } from "./filters";
import { NameLink, OutcomeBadge } from "./decision-table";

interface DecisionDetail extends DecisionRow {
  agentId: string;
  scopes: string[];
  determining: string[];
  args: Record<string, unknown> | null;
  masked: string[];
  latencyUs: number | null;
  latencyMs: number | null;
  names: Names;
  receivedAt: string;
  bundleFound: boolean;
  policies: { id: string; name: string | null; kind: string | null; cedar: string | null }[];
  claims: { iss: string | null; iat: number | null; exp: number | null; user: string | null; client: string | null; scopes: string[]; groups: string[]; actors: string[]; ip: string | null };
  simulatorUrl: string | null;
  traceId: string | null;
}

const MASKED = "[masked]";

/** Whether a concrete path was masked by the agent (a listed path, or under one; "*" is the whole arguments). */
const isMasked = (masked: Set<string>, path: string) => masked.has("*") || [...masked].some((m) => path === m || path.startsWith(`${m}.`));

/** Pretty JSON with masked values marked (hidden or hashed), rendered as text nodes only. */
function JsonView({ value, path, masked, indent = 0 }: { value: unknown; path: string; masked: Set<string>; indent?: number }): ReactNode {
  const pad = "  ".repeat(indent);
  if (path && isMasked(masked, path) && (typeof value === "string" || value === null)) {
    const hashed = typeof value === "string" && value.startsWith("sha256:");
    return (
      <span className="rounded bg-amber-100 px-1 text-amber-900" data-testid="masked-value" title={hashed ? `Hashed by the agent (${path})` : `Hidden by the agent (${path})`}>
        {JSON.stringify(value)} <span className="font-sans text-[10px] font-semibold uppercase">{hashed ? "hashed" : "masked"}</span>
      </span>
    );
  }
  if (Array.isArray(value)) {
    if (value.length === 0) return "[]";
    return (
      <>
        {"[\n"}
        {value.map((v, i) => (
          <span key={i}>
            {pad}
            {"  "}
            <JsonView value={v} path={path ? `${path}.${i}` : String(i)} masked={masked} indent={indent + 1} />
            {i < value.length - 1 ? ",\n" : "\n"}
          </span>
        ))}
        {pad}
        {"]"}
      </>
    );
  }
  if (value && typeof value === "object") {
    const entries = Object.entries(value as Record<string, unknown>);
    if (entries.length === 0) return "{}";
    return (
      <>
        {"{\n"}
        {entries.map(([k, v], i) => (
          <span key={k}>
            {pad}
            {"  "}
            <span className="text-indigo-700">{JSON.stringify(k)}</span>
            {": "}
            <JsonView value={v} path={path ? `${path}.${k}` : k} masked={masked} indent={indent + 1} />
            {i < entries.length - 1 ? ",\n" : "\n"}
          </span>
        ))}
        {pad}
        {"}"}
      </>
    );
  }
  if (value === MASKED) return <span className="rounded bg-amber-100 px-1 text-amber-900">{JSON.stringify(value)}</span>;
  return JSON.stringify(value);
}

const epoch = (s: number | null) => (s === null ? null : new Date(s * 1000).toISOString());

function Row({ k, children }: { k: string; children: ReactNode }) {
  return (
    <div className="grid grid-cols-[10rem_1fr] gap-2 py-1 text-sm">
      <dt className="text-slate-500">{k}</dt>
      <dd className="min-w-0 break-words text-slate-800">{children}</dd>
    </div>
  );
}

const list = (xs: string[]) =>
  xs.length ? (
    xs.map((x) => (
      <code key={x} className="mr-1 rounded bg-slate-100 px-1 text-xs">
        {x}
      </code>
    ))
  ) : (
    <span className="text-slate-400">none</span>
  );

/** One decision: what was asked, the outcome and why, the policies at that revision, the token's claims. */
export function DecisionDetailView({ decisionId }: { decisionId: string }) {
  // The log's filter travels in `back` so "Back to the log" returns to the same view.
  const backQs = useSearchParams().get("back") ?? "";
  const backHref = `/audit${/^[\w%&=.+~:*-]*$/.test(backQs) && backQs ? `?${backQs}` : ""}`;
  const q = useQuery({ queryKey: auditKeys.byId(decisionId), queryFn: () => apiFetch<DecisionDetail>(`/decisions/${encodeURIComponent(decisionId)}`), retry: false });
  if (q.error) return <ErrorBanner error={q.error} />;
  if (!q.data) return <p className="text-sm text-slate-500">Loading the decision…</p>;
  const d = q.data;
  const masked = new Set(d.masked);
  // Ids in the determining policies' Cedar get their names as tooltips.
  const cedarNames: Record<string, string> = {};
  for (const [id, name] of Object.entries(d.names?.server ?? {})) cedarNames[id] = `server ${name}`;
  for (const [id, name] of Object.entries(d.names?.tenant ?? {})) cedarNames[id] = `tenant ${name}`;
  return (
    <>
      <PageHeader
        title={
          <span className="flex items-center gap-2">
            <OutcomeBadge outcome={d.outcome} /> {d.tool ?? d.method}
          </span>
        }
        description={<Time iso={d.at} />}
        actions={
          <>
            <Link href={backHref} className="text-sm text-indigo-700 hover:underline">
              Back to the log
            </Link>
            {d.simulatorUrl ? (
              <Link href={d.simulatorUrl} className="rounded-md bg-indigo-600 px-3 py-1.5 text-sm font-medium text-white shadow-sm hover:bg-indigo-500">
                Open in simulator
              </Link>
            ) : null}
          </>
        }
      />
      <div className="grid gap-4 lg:grid-cols-2">
        <Card title="Request">
          <dl>
            <Row k="Decision id">
              <code className="text-xs">{d.id}</code>
            </Row>
            <Row k="Tenant">{d.tenantId ? <NameLink kind="tenant" id={d.tenantId} names={d.names} /> : <span className="text-slate-400">none (not resolved)</span>}</Row>
            <Row k="Server">
              <NameLink kind="server" id={d.serverId} names={d.names} />
            </Row>
            <Row k="Method">{d.method}</Row>
            <Row k="Tool">{d.tool ? <code className="text-xs">{d.tool}</code> : "—"}</Row>
            <Row k="Reason">
              <span data-testid="decision-reason">{d.reason || "—"}</span>
            </Row>
            <Row k="Bundle">
              <NameLink kind="fleet" id={d.fleetId} names={d.names} /> revision {d.bundleRevision ?? "—"}
            </Row>
            <Row k="Agent">
              {d.names?.agent?.[d.agentId] ? (
                <Link href={hrefOf("fleet", d.fleetId)} className="text-indigo-700 hover:underline" title={d.agentId}>
                  {d.names.agent[d.agentId]}
                </Link>
              ) : (
                <code className="text-xs">{d.agentId}</code>
              )}
            </Row>
            <Row k="Latency">
              <span data-testid="decision-latency" title={d.latencyUs === null ? undefined : `${d.latencyUs.toLocaleString()} µs`}>
                {d.latencyMs === null || d.latencyMs === undefined ? "—" : `${d.latencyMs.toLocaleString(undefined, { minimumFractionDigits: 1, maximumFractionDigits: 1 })} ms`}
              </span>
            </Row>
            <Row k="Received">
              <Time iso={d.receivedAt} />
            </Row>
            {d.traceId ? (
              <Row k="Trace id">
                <code className="text-xs" data-testid="decision-trace-id" title="OpenTelemetry trace of this call: search it in your tracing backend">
                  {d.traceId}
                </code>
              </Row>
            ) : null}
          </dl>
        </Card>
        <Card title="Token claims that mattered">
          <dl data-testid="decision-claims">
            <Row k="User (sub)">{d.claims.user ?? "—"}</Row>
            <Row k="Client">{d.claims.client ?? "—"}</Row>
            <Row k="Scopes">{list(d.claims.scopes)}</Row>
            <Row k="Groups">{list(d.claims.groups)}</Row>
            <Row k="Delegation actors">{list(d.claims.actors)}</Row>
            <Row k="Issuer">{d.claims.iss ?? "—"}</Row>
            <Row k="Issued at">{d.claims.iat ? <Time iso={epoch(d.claims.iat)} /> : "—"}</Row>
            <Row k="Expires">{d.claims.exp ? <Time iso={epoch(d.claims.exp)} /> : "—"}</Row>
            <Row k="Client address">{d.claims.ip ?? "—"}</Row>
          </dl>
        </Card>
      </div>
      <Card title="Arguments (as masked by the agent)" className="mt-4">
        {d.masked.length ? (
          <p className="mb-2 text-xs text-amber-800">
            Masked before leaving the agent:{" "}
            {d.masked.map((m) => (
              <code key={m} className="mr-1">
                {m}
              </code>
            ))}
            . The control plane never saw these values.
          </p>
        ) : null}
        {d.args === null ? (
          <p className="text-sm text-slate-500">{masked.has("*") ? "All arguments were masked." : "No arguments."}</p>
        ) : (
          <pre className="overflow-x-auto rounded bg-slate-50 p-3 font-mono text-xs ring-1 ring-slate-200" data-testid="decision-args">
            <JsonView value={d.args} path="" masked={masked} />
          </pre>
        )}
      </Card>
      <Card title={`Determining policies${d.bundleRevision !== null ? ` at revision ${d.bundleRevision}` : ""}`} className="mt-4">
        {d.policies.length === 0 ? (
          <p className="text-sm text-slate-600">{d.outcome === "allow" ? "No policy recorded." : "No policy matched: denied by default (or before Cedar, see the reason)."}</p>
        ) : (
          <ul className="space-y-3">
            {!d.bundleFound ? <li className="text-xs text-amber-800">The bundle revision is no longer stored; only the policy ids are known.</li> : null}
            {d.policies.map((p) => (
              <li key={p.id} className="space-y-2 rounded-md p-3 ring-1 ring-slate-200" data-testid="determining-policy">
                <div className="flex flex-wrap items-center gap-2">
                  {d.names?.policy?.[p.id] && !p.id.startsWith("scope:") ? (
                    <Link href={hrefOf("policy", p.id)} className="font-medium text-indigo-700 hover:underline">
                      {p.name ?? d.names.policy[p.id]}
                    </Link>
                  ) : (
                    <span className="font-medium text-slate-900">{p.name ?? p.id}</span>
                  )}
                  {p.kind ? <Badge>{p.kind}</Badge> : null}
                  <code className="text-xs text-slate-500">{p.id}</code>
                </div>
                {p.cedar ? (
                  <CedarCode text={p.cedar} label={`Cedar of ${p.name ?? p.id} at revision ${d.bundleRevision}`} className="max-h-80" names={cedarNames} />
                ) : (
                  <p className="text-xs text-slate-500">No Cedar text in that revision (a built-in rule).</p>
                )}
              </li>
            ))}
          </ul>
        )}
      </Card>
    </>
  );
}
