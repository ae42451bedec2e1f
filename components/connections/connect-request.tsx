"use client";

import Link from "next/link";
import { Badge, Button, Card, ErrorBanner, Time } from "@/components/ui";
import { useConnectRequest, useStartConnect } from "./queries";

/** The page an agent's URL elicitation names: connect the signed-in user's account at one upstream. */
export function ConnectRequest({ id }: { id: string }) {
  const q = useConnectRequest(id);
  const start = useStartConnect();
  const r = q.data;
  return (
    <>
      <ErrorBanner error={q.error ?? start.error} />
      {r ? (
        <Card title={`Connect your account at ${r.serverName}`} className="max-w-2xl">
          <div className="space-y-3 text-sm text-slate-700">
            <p>
              <strong>{r.serverName}</strong> (tenant {r.tenantName}) acts on the upstream service with each user&apos;s own account. Allow it once: you will sign in at the upstream&apos;s
              authorization server and approve access. Mandate keeps the grant encrypted on the control plane; your MCP client never receives it.
            </p>
            <p>
              For <code className="text-xs">{r.user}</code> · link valid until <Time iso={r.expiresAt} />{" "}
              <Badge color={r.status === "completed" ? "green" : r.status === "expired" ? "red" : "gray"}>{r.status}</Badge>
            </p>
            {r.status === "completed" ? (
              <p>
                Connected. Call the tool again from your client.{" "}
                <Link href="/connections" className="text-indigo-700 hover:underline">
                  Your connections
                </Link>
              </p>
            ) : r.status === "expired" ? (
              <p>This link expired: call the tool again for a new one.</p>
            ) : (
              <Button busy={start.isPending} onClick={() => start.mutate(r.id)}>
                Connect
              </Button>
            )}
          </div>
        </Card>
      ) : null}
    </>
  );
}
