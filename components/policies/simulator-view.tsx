"use client";

import { useMutation, useQueries, useQuery } from "@tanstack/react-query";
import Link from "next/link";
import { useSearchParams } from "next/navigation";
import { useState, type FormEvent } from "react";
import { useMe } from "@/components/shell/context";
import { Badge, Button, Card, EmptyState, ErrorBanner, PageHeader, SelectField, cx } from "@/components/ui";
import { ApiError, apiFetch, keys, qs } from "@/lib/client/api";
import { CedarCode } from "./cedar-code";
import { CompileIssuesAlert } from "./issues";
import { PairPicker, usePolicyPair } from "./pair-picker";
import { useCedarSchema, usePolicies } from "./queries";
import { RequestFields, draftFromRequest, emptyRequestDraft, requestErrorsFromApi, requestFromDraft, type RequestDraft, type RequestErrors } from "./request-fields";
import type { BundleSummary, DeterminingPolicy, FleetSummary, PolicyTestRequest, SimulateResult } from "./types";

/** What each check of decide() means, for a denial that happened before Cedar. */
const STAGE_LABELS: Record<string, string> = {
  revoked: "the grant behind the token was revoked",
  server: "the tenant may not use this server",
  method: "the method is not allowed through an agent",
  client: "the client is not approved for this tenant",
  catalogue: "the tool is not in the approved catalogue",
  drift: "the tool changed upstream since it was approved",
  error: "the request could not be evaluated",
};

/** The request in the address (?user&groups&client&scopes&tool&action&args&time), as a form. */
function draftFromUrl(params: URLSearchParams): RequestDraft {
  const list = (k: string) =>
    (params.get(k) ?? "")
      .split(",")
      .map((s) => s.trim())
      .filter(Boolean);
  const action = params.get("action");
  const base = draftFromRequest({
    user: params.get("user") ?? "",
    groups: list("groups"),
    client: params.get("client") ?? "",
    scopes: list("scopes"),
    tool: params.get("tool") ?? "",
    action: action === "list_tools" ? "list_tools" : "call_tool",
    time: params.get("time") ?? undefined,
  });
  const args = params.get("args");
  if (args) {
    // Pretty-printed when it parses; otherwise as given, for the form to point out.
    try {
      base.args = JSON.stringify(JSON.parse(args), null, 2);
    } catch {
      base.args = args;
    }
  }
  return params.toString() ? base : emptyRequestDraft();
}

/** A link that opens the simulator with this request filled in. */
function shareHref(tenantId: string, serverId: string, r: PolicyTestRequest, source: string) {
  const [fleet, revision] = source ? source.split("@") : [];
  return `/simulator${qs({
    tenant: tenantId,
    server: serverId,
    user: r.user,
    groups: r.groups.join(","),
    client: r.client,
    scopes: r.scopes.join(","),
    tool: r.tool,
    action: r.action === "list_tools" ? r.action : undefined,
    args: Object.keys(r.args).length ? JSON.stringify(r.args) : undefined,
    time: r.time,
    fleet,
    revision,
  })}`;
}

const kindBadge = (kind: string) =>
  kind === "rule" ? <Badge color="blue">rule</Badge> : kind === "cedar" ? <Badge>Cedar</Badge> : kind === "scope" ? <Badge color="amber">scope mapping</Badge> : <Badge>{kind}</Badge>;

function PolicyCard({ p, known, tone }: { p: DeterminingPolicy; known: boolean; tone: "normal" | "error" }) {
  const base = p.id.replace(/\.\d+$/, "");
  return (
    <li className={cx("space-y-2 rounded-md p-3 ring-1", tone === "error" ? "bg-rose-50 ring-rose-200" : "bg-white ring-slate-200")}>
      <div className="flex flex-wrap items-center gap-2">
        <span className="font-medium text-slate-900">{p.name}</span>
        {kindBadge(p.kind)}
        <code className="text-xs text-slate-500">{p.id}</code>
        {known ? (
          <Link href={`/policies/${encodeURIComponent(base)}`} className="text-xs font-medium text-indigo-700 hover:underline">
            Open policy
          </Link>
        ) : null}
      </div>
      {p.cedar ? <CedarCode text={p.cedar} label={`Cedar of ${p.name}`} className="max-h-80" /> : <p className="text-xs text-slate-500">No Cedar text (a built-in rule).</p>}
    </li>
  );
}

/** Published revisions of the fleets that serve a server (owners and auditors); failures leave just the draft. */
function useRevisions(serverId: string | null, enabled: boolean) {
  const fleets = useQuery({
    queryKey: keys.simulator.fleets,
    queryFn: () => apiFetch<{ items: FleetSummary[] }>("/fleets"),
    enabled,
    retry: false,
  });
  const serving = (fleets.data?.items ?? []).filter((f) => serverId && f.serverIds.includes(serverId));
  const bundles = useQueries({
    queries: serving.map((f) => ({
      queryKey: keys.simulator.bundles(f.id),
      queryFn: () => apiFetch<{ activeRevision: number | null; items: BundleSummary[] }>(`/fleets/${encodeURIComponent(f.id)}/bundles`),
      retry: false,
    })),
  });
  const groups = serving.map((f, i) => ({ fleet: f, revisions: bundles[i]?.data?.items ?? [], active: bundles[i]?.data?.activeRevision ?? f.activeRevision, failed: Boolean(bundles[i]?.error) }));
  const failed = Boolean(fleets.error) || groups.some((g) => g.failed);
  const loading = enabled && (fleets.isPending || bundles.some((b) => b.isPending));
  return { groups: groups.filter((g) => g.revisions.length), failed, loading };
}

export function SimulatorView() {
  const me = useMe();
  const params = useSearchParams();
  const pair = usePolicyPair();
  const { tenantId, serverId, server } = pair;
  const schema = useCedarSchema(serverId);
  const policies = usePolicies(tenantId, serverId);
  const seesFleets = me.globalRole === "owner" || me.globalRole === "auditor";
  const revisions = useRevisions(serverId, seesFleets);

  const [draft, setDraft] = useState<RequestDraft>(() => draftFromUrl(new URLSearchParams(params.toString())));
  const urlFleet = params.get("fleet");
  const urlRevision = params.get("revision");
  // "" is the draft; "fleetId@revision" a published bundle.
  const [source, setSource] = useState(() => (urlFleet && urlRevision && /^\d+$/.test(urlRevision) ? `${urlFleet}@${urlRevision}` : ""));
  const [local, setLocal] = useState<RequestErrors>({});

  const available = new Set(revisions.groups.flatMap((g) => g.revisions.map((r) => `${g.fleet.id}@${r.revision}`)));
  // A revision is offered only when it could be listed; otherwise the draft is used.
  const sourceUsable = source === "" || available.has(source);
  const effectiveSource = sourceUsable ? source : "";
  const sourceLabel = (s: string) => {
    if (!s) return "Draft (current policies)";
    const [fid, rev] = s.split("@");
    const g = revisions.groups.find((x) => x.fleet.id === fid);
    return `${g?.fleet.name ?? fid}, revision ${rev}`;
  };

  const decide = useMutation({
    mutationFn: (body: { tenantId: string; serverId: string; request: PolicyTestRequest; fleetId?: string; revision?: number }) => apiFetch<SimulateResult>("/simulate", { method: "POST", body }),
  });
  const [decided, setDecided] = useState<{ key: string; label: string; request: PolicyTestRequest; source: string } | null>(null);
  const currentRequest = requestFromDraft(draft);
  const currentKey = JSON.stringify({ tenantId, serverId, r: currentRequest.ok ? currentRequest.request : null, s: effectiveSource });
  const stale = decided !== null && decided.key !== currentKey;

  const submit = (e: FormEvent) => {
    e.preventDefault();
    if (!tenantId || !serverId) return;
    const r = requestFromDraft(draft);
    if (!r.ok) {
      setLocal(r.errors);
      return;
    }
    setLocal({});
    const [fleetId, rev] = effectiveSource ? effectiveSource.split("@") : [];
    setDecided({ key: currentKey, label: sourceLabel(effectiveSource), request: r.request, source: effectiveSource });
    decide.mutate({ tenantId, serverId, request: r.request, ...(fleetId && rev ? { fleetId, revision: Number(rev) } : {}) });
  };

  const apiErrors = decide.error instanceof ApiError ? requestErrorsFromApi(decide.error.issues) : {};
  const errors = { ...apiErrors, ...local };
  const result = decide.data;
  const knownPolicy = (id: string) => effectiveSource === "" && Boolean(policies.data?.items.some((p) => p.id === id.replace(/\.\d+$/, "")));

  return (
    <>
      <PageHeader
        title="Simulator"
        description="Decide one request the way an agent would: against the current policies of a server (the draft) or against a published revision. Nothing is recorded and nothing changes."
      />
      <div className="mb-6">
        <PairPicker pair={pair} />
      </div>

      {me.tenants.length === 0 ? (
        <EmptyState title="You are not a member of any tenant">Requests are decided for a tenant. Ask an owner to add you to one.</EmptyState>
      ) : pair.servers.data && pair.servers.data.items.length === 0 ? (
        <EmptyState
          title="This tenant has no MCP server"
          action={
            <Link href="/servers" className="text-sm font-medium text-indigo-700 hover:underline">
              Go to Servers
            </Link>
          }
        >
          The simulator decides calls to the tools of a server the tenant may use. Register or share a server first.
        </EmptyState>
      ) : (
        <div className="grid grid-cols-1 items-start gap-6 xl:grid-cols-[minmax(0,28rem)_minmax(0,1fr)]">
          <Card title="Request">
            <form noValidate onSubmit={submit} className="space-y-4">
              <div>
                <SelectField
                  label="Decide against"
                  value={effectiveSource}
                  onChange={(e) => setSource(e.target.value)}
                  hint={
                    !seesFleets
                      ? "Published revisions are visible to owners and auditors."
                      : revisions.loading
                        ? "Loading published revisions…"
                        : revisions.failed
                          ? "Published revisions could not be loaded; the draft is available."
                          : revisions.groups.length
                            ? undefined
                            : "No fleet serving this server has published a revision yet."
                  }
                >
                  <option value="">Draft (current policies)</option>
                  {revisions.groups.map((g) => (
                    <optgroup key={g.fleet.id} label={`Fleet ${g.fleet.name}`}>
                      {g.revisions.map((r) => (
                        <option key={r.revision} value={`${g.fleet.id}@${r.revision}`}>
                          Revision {r.revision}
                          {r.revision === g.active ? " (active)" : ""}
                          {r.note ? ` — ${r.note}` : ""}
                        </option>
                      ))}
                    </optgroup>
                  ))}
                </SelectField>
                {!sourceUsable && !revisions.loading ? (
                  <p role="note" className="mt-1 text-xs text-amber-700">
                    Revision {urlRevision} of fleet {urlFleet} from the link is not available to you here; deciding against the draft.
                  </p>
                ) : null}
              </div>
              <RequestFields value={draft} onChange={setDraft} schema={schema.data} serverScopes={server?.scopes ?? []} errors={errors} />
              <div className="flex flex-wrap items-center justify-between gap-2">
                {tenantId && serverId && currentRequest.ok ? (
                  <Link href={shareHref(tenantId, serverId, currentRequest.request, effectiveSource)} className="text-xs text-indigo-700 hover:underline">
                    Link to this request
                  </Link>
                ) : (
                  <span />
                )}
                <Button type="submit" busy={decide.isPending} disabled={!tenantId || !serverId}>
                  Decide
                </Button>
              </div>
            </form>
          </Card>

          <section aria-labelledby="decision-heading" aria-live="polite" className="space-y-4">
            <h2 id="decision-heading" className="text-sm font-semibold text-slate-900">
              Decision
            </h2>
            {decide.error ? <ErrorBanner error={decide.error} /> : null}
            {!result && !decide.isPending && !decide.error ? (
              <EmptyState title="No decision yet">Fill in the request and choose Decide. The answer shows which policies determined it, with their Cedar.</EmptyState>
            ) : null}
            {decide.isPending ? (
              <p role="status" className="text-sm text-slate-500">
                Deciding…
              </p>
            ) : null}
            {result && decided && !decide.isPending ? (
              <div className={cx("space-y-4", stale && "opacity-60")}>
                {stale ? (
                  <p role="note" className="rounded-md bg-amber-50 px-3 py-2 text-sm text-amber-900 ring-1 ring-inset ring-amber-200">
                    The request changed since this decision. Choose Decide again.
                  </p>
                ) : null}
                {result.decision === null ? (
                  <CompileIssuesAlert title="The current policies of this server do not compile, so nothing can be decided against the draft." issues={result.issues} />
                ) : (
                  <div className="flex flex-wrap items-center gap-4 rounded-lg bg-white p-4 shadow-sm ring-1 ring-slate-200">
                    <span
                      data-testid="sim-decision"
                      data-decision={result.decision}
                      className={cx(
                        "inline-flex min-w-32 items-center justify-center rounded-lg px-5 py-3 text-2xl font-bold uppercase tracking-wide ring-2 ring-inset",
                        result.decision === "allow" ? "bg-emerald-50 text-emerald-700 ring-emerald-300" : "bg-rose-50 text-rose-700 ring-rose-300",
                      )}
                    >
                      {result.decision === "allow" ? "Allow" : "Deny"}
                    </span>
                    <div className="min-w-0 flex-1 text-sm">
                      <p data-testid="sim-reason" className="font-medium text-slate-900">
                        {result.reason}
                      </p>
                      <p className="text-slate-600">
                        {decided.request.user} {decided.request.action === "list_tools" ? "listing" : "calling"} <code className="font-mono">{decided.request.tool}</code>, against {decided.label}
                        {decided.request.time ? `, at ${decided.request.time}` : ", now"}.
                      </p>
                    </div>
                  </div>
                )}

                {result.determiningPolicies?.length ? (
                  <div className="space-y-2">
                    <h3 className="text-sm font-semibold text-slate-900">{result.decision === "allow" ? "Allowed by" : "Denied by"}</h3>
                    <p className="text-xs text-slate-500">The Cedar as compiled into the bundle: each policy is confined to its tenant and server.</p>
                    <ul className="space-y-3">
                      {result.determiningPolicies.map((p) => (
                        <PolicyCard key={p.id} p={p} known={knownPolicy(p.id)} tone="normal" />
                      ))}
                    </ul>
                  </div>
                ) : result.decision === "deny" && !result.erroredPolicies?.length ? (
                  result.stage && result.stage !== "policy" && result.stage !== "arguments" ? (
                    <p data-testid="sim-stage" className="text-sm text-slate-600">
                      Denied before any policy is evaluated ({STAGE_LABELS[result.stage] ?? result.stage}): an agent refuses this request whatever the policies say.
                    </p>
                  ) : (
                    <p className="text-sm text-slate-600">
                      No policy determined this: nothing permits the request, so it is denied by default.
                      {result.stepUpScopes?.length ? (
                        <>
                          {" "}
                          An agent would ask the client for a token with one of these scopes: <code className="font-mono">{result.stepUpScopes.join(" ")}</code>.
                        </>
                      ) : null}
                    </p>
                  )
                ) : null}

                {result.erroredPolicies?.length ? (
                  <div className="space-y-2">
                    <h3 className="text-sm font-semibold text-rose-800">Failed to evaluate (an error denies)</h3>
                    <ul className="space-y-3">
                      {result.erroredPolicies.map((p) => (
                        <PolicyCard key={p.id} p={p} known={knownPolicy(p.id)} tone="error" />
                      ))}
                    </ul>
                  </div>
                ) : null}
              </div>
            ) : null}
          </section>
        </div>
      )}
    </>
  );
}
