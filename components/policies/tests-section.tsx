"use client";

import { useMutation, useQueryClient } from "@tanstack/react-query";
import { useState } from "react";
import { Badge, Button, ConfirmButton, EmptyState, ErrorBanner, Table, Td, Time } from "@/components/ui";
import { apiFetch, keys } from "@/lib/client/api";
import { CompileIssuesAlert } from "./issues";
import { usePolicyTests } from "./queries";
import { TestModal } from "./test-modal";
import type { CedarSchemaInfo, PublicPolicy, PublicPolicyTest, RunResult, TestResult } from "./types";

/** A readable name for a policy id in a decision ("pol_…", "pol_….2", "scope:srv:files:read"). */
export function policyLabel(id: string, policies: PublicPolicy[] | undefined): string {
  const scope = /^scope:[^:]+:(.+)$/.exec(id);
  if (scope) return `scope mapping “${scope[1]}”`;
  const base = id.replace(/\.\d+$/, "");
  const p = policies?.find((x) => x.id === base);
  return p ? `“${p.name}”` : id;
}

function RequestSummary({ r }: { r: PublicPolicyTest["request"] }) {
  const args = Object.keys(r.args ?? {}).length ? JSON.stringify(r.args) : null;
  return (
    <div className="space-y-0.5 text-xs">
      <div>
        <span className="font-medium text-slate-900">{r.user}</span> <span className="text-slate-500">{r.action === "list_tools" ? "lists tools, checking" : "calls"}</span>{" "}
        <span className="font-mono text-slate-900">{r.tool}</span>
      </div>
      <div className="text-slate-500">
        {r.groups.length ? <span className="mr-2">groups: {r.groups.join(", ")}</span> : null}
        {r.client ? <span className="mr-2">client: {r.client}</span> : null}
        {r.scopes.length ? <span className="mr-2">scopes: {r.scopes.join(" ")}</span> : null}
        {r.time ? (
          <span className="mr-2">
            at <Time iso={r.time} />
          </span>
        ) : null}
      </div>
      {args ? (
        <div className="max-w-md truncate font-mono text-slate-600" title={args}>
          {args}
        </div>
      ) : null}
    </div>
  );
}

const DecisionBadge = ({ d }: { d: "allow" | "deny" | "not_run" }) => (d === "allow" ? <Badge color="green">allow</Badge> : d === "deny" ? <Badge color="red">deny</Badge> : <Badge>not run</Badge>);

function ResultCell({ r, policies }: { r: TestResult | undefined; policies: PublicPolicy[] | undefined }) {
  if (!r) return <span className="text-xs text-slate-400">not run yet</span>;
  return (
    <div className="space-y-0.5 text-xs">
      <div className="flex items-center gap-1.5">
        {r.passed ? <Badge color="green">✓ pass</Badge> : <Badge color="red">✗ fail</Badge>}
        <span className="text-slate-600">
          got <DecisionBadge d={r.actual} />
        </span>
      </div>
      {r.result ? (
        <div className="text-slate-600">
          {r.result.reason}
          {r.result.determining.length ? <span className="text-slate-500"> — by {r.result.determining.map((id) => policyLabel(id, policies)).join(", ")}</span> : null}
        </div>
      ) : r.actual === "not_run" ? (
        <div className="text-slate-500">The policies do not compile, so the test could not run.</div>
      ) : null}
    </div>
  );
}

/** The tests of one tenant on one server: list, add, edit, delete, and run them against the current policies. */
export function TestsSection({
  tenantId,
  serverId,
  canWrite,
  schema,
  serverScopes,
  policies,
}: {
  tenantId: string;
  serverId: string;
  canWrite: boolean;
  schema: CedarSchemaInfo | undefined;
  serverScopes: string[];
  policies: PublicPolicy[] | undefined;
}) {
  const qc = useQueryClient();
  const tests = usePolicyTests(tenantId, serverId);
  const [editing, setEditing] = useState<PublicPolicyTest | "new" | null>(null);
  const [ran, setRan] = useState<{ at: string; result: RunResult; stale: boolean } | null>(null);

  const run = useMutation({
    mutationFn: () => apiFetch<RunResult>("/policy-tests/run", { method: "POST", body: { serverId, tenantId } }),
    onSuccess: (result) => setRan({ at: new Date().toISOString(), result, stale: false }),
  });
  const changed = async (testId?: string) => {
    // A changed test's old result no longer says anything.
    setRan((r) => (r ? { ...r, stale: true, result: { ...r.result, tests: r.result.tests.filter((t) => t.id !== testId) } } : r));
    await qc.invalidateQueries({ queryKey: keys.policyTests.all });
  };

  const items = tests.data?.items ?? [];
  const byId = new Map(ran?.result.tests.map((t) => [t.id, t]));
  const notRun = ran?.result.tests.filter((t) => t.actual === "not_run").length ?? 0;
  const addButton = canWrite ? (
    <Button variant="secondary" onClick={() => setEditing("new")}>
      Add test
    </Button>
  ) : null;

  return (
    <section aria-labelledby="tests-heading" className="space-y-3">
      <div className="flex flex-wrap items-end justify-between gap-3">
        <div>
          <h2 id="tests-heading" className="text-base font-semibold text-slate-900">
            Tests
          </h2>
          <p className="text-sm text-slate-600">Requests and the decision each must get. They run against the current policies (the draft) here, and before every publish: a failing test blocks it.</p>
        </div>
        <div className="flex gap-2">
          {addButton}
          <Button onClick={() => run.mutate()} busy={run.isPending} disabled={!items.length}>
            Run tests
          </Button>
        </div>
      </div>

      <ErrorBanner error={tests.error ?? run.error} />

      {ran ? (
        <div className="space-y-2 rounded-md bg-white px-3 py-2 ring-1 ring-slate-200" aria-live="polite">
          <p className="flex flex-wrap items-center gap-2 text-sm">
            <span data-testid="tests-summary" className={ran.result.failed ? "font-semibold text-rose-700" : "font-semibold text-emerald-700"}>
              {`${ran.result.passed} passed, ${ran.result.failed} failed`}
            </span>
            {notRun ? <span className="text-slate-600">({notRun} could not run)</span> : null}
            <span className="text-xs text-slate-500">
              run at <Time iso={ran.at} />
            </span>
            {ran.stale ? <span className="text-xs text-amber-700">Tests changed since: run again for current results.</span> : null}
          </p>
          {ran.result.issues.length ? <CompileIssuesAlert title="The current policies of this server do not compile, so no test ran:" issues={ran.result.issues} /> : null}
          {ran.result.warnings.length ? (
            <ul className="list-inside list-disc text-xs text-amber-800">
              {ran.result.warnings.map((w, n) => (
                <li key={n}>{w}</li>
              ))}
            </ul>
          ) : null}
        </div>
      ) : null}

      {tests.isPending ? (
        <p role="status" className="text-sm text-slate-500">
          Loading tests…
        </p>
      ) : items.length === 0 && tests.data ? (
        <EmptyState title="No test yet" action={addButton}>
          A test is a request — who calls which tool with which arguments — and the decision it must get, such as “a support agent may read tickets” or “nobody may delete a project”. Add tests for
          what must never change; they guard every publish.
        </EmptyState>
      ) : items.length ? (
        <Table head={["Name", "Request", "Expected", "Result", ""]}>
          {items.map((t) => {
            const r = byId.get(t.id);
            return (
              <tr key={t.id} data-testid={`test-result-${t.name}`} data-passed={r ? String(r.passed) : undefined} className={r && !r.passed ? "bg-rose-50/50" : undefined}>
                <Td className="font-medium text-slate-900">{t.name}</Td>
                <Td>
                  <RequestSummary r={t.request} />
                </Td>
                <Td>
                  <DecisionBadge d={t.expected} />
                </Td>
                <Td>
                  <ResultCell r={r} policies={policies} />
                </Td>
                <Td className="whitespace-nowrap text-right">
                  {canWrite ? (
                    <span className="inline-flex gap-1">
                      <Button variant="ghost" onClick={() => setEditing(t)} aria-label={`Edit test ${t.name}`}>
                        Edit
                      </Button>
                      <ConfirmButton
                        label="Delete"
                        title={`Delete test “${t.name}”?`}
                        body="The test no longer runs here or before publishing. This cannot be undone."
                        confirmLabel="Delete test"
                        onConfirm={async () => {
                          await apiFetch(`/policy-tests/${encodeURIComponent(t.id)}`, { method: "DELETE" });
                          await changed(t.id);
                        }}
                      />
                    </span>
                  ) : null}
                </Td>
              </tr>
            );
          })}
        </Table>
      ) : null}

      {canWrite ? (
        <TestModal
          open={editing !== null}
          onClose={() => setEditing(null)}
          onSaved={(t) => void changed(t.id)}
          tenantId={tenantId}
          serverId={serverId}
          test={editing && editing !== "new" ? editing : undefined}
          schema={schema}
          serverScopes={serverScopes}
        />
      ) : null}
    </section>
  );
}
