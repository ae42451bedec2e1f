"use client";

import { Button } from "@/components/ui";
import { FormError } from "./errors";
import { useTestConnection, type ConnectionResult } from "./queries";

const failureTitle: Record<Extract<ConnectionResult, { ok: false }>["failure"], string> = {
  unauthorized: "The upstream refused the credential",
  http_status: "The upstream answered with an error",
  tls: "TLS failed",
  timeout: "Timed out",
  dns: "The host could not be resolved",
  connect: "Could not connect",
  refused_address: "Egress refused the address",
  redirect: "The upstream redirected",
  credential: "The credential could not be used",
  protocol: "Not an MCP answer",
};

/** "Test connection": the control plane calls the upstream with this entry's current secret and shows what happened. */
export function TestConnection({ entryId }: { entryId: string }) {
  const test = useTestConnection(entryId);
  const r = test.data;
  return (
    <div className="space-y-2">
      <Button variant="secondary" busy={test.isPending} onClick={() => test.mutate()}>
        Test connection
      </Button>
      <FormError error={test.error} />
      {r ? (
        r.ok ? (
          <div role="status" data-testid="test-connection-result" className="rounded-md bg-emerald-50 px-3 py-2 text-sm text-emerald-900 ring-1 ring-inset ring-emerald-200">
            Connected: version {r.version} was accepted by {r.upstream}, which listed {r.toolCount} tool{r.toolCount === 1 ? "" : "s"} ({r.latencyMs} ms).
          </div>
        ) : (
          <div role="alert" data-testid="test-connection-result" className="rounded-md bg-rose-50 px-3 py-2 text-sm text-rose-900 ring-1 ring-inset ring-rose-200">
            <p className="font-medium">
              {failureTitle[r.failure]}
              {r.status ? ` (HTTP ${r.status})` : ""}
            </p>
            <p>{r.message}</p>
            <p className="mt-1 text-xs text-rose-700">
              Tried version {r.version} after {r.latencyMs} ms. Nothing the upstream answered is shown.
            </p>
          </div>
        )
      ) : null}
    </div>
  );
}
