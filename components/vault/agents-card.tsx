"use client";

import Link from "next/link";
import { Badge, Card, ErrorBanner, Table, Td, Time } from "@/components/ui";
import { useEntryAgents, type EntryAgents, type VaultEntry } from "./queries";

type Item = EntryAgents["items"][number];

const statusColor = { current: "green", grace: "amber", retired: "red", scheduled: "blue", unknown: "gray" } as const;

/** The version an agent reported, with its status now; "unknown" for agents that do not report versions. */
export function UseBadge({ use }: { use: Item["use"] }) {
  if (use.state === "unknown") return <span title="This agent does not report which version it holds (an agent older than this report)">unknown</span>;
  if (use.state === "not_held")
    return (
      <span className="text-slate-500" title="The agent holds no secret of this entry (no call needed it yet, or it is another tenant's)">
        not held
      </span>
    );
  return (
    <span className="inline-flex items-center gap-1">
      v{use.version} <Badge color={statusColor[use.versionStatus]}>{use.versionStatus}</Badge>
    </span>
  );
}

/** "2 on v3 (current) · 1 on v2 (grace) · 1 unknown": one line to read before ending a grace period. */
export function usageSummary(data: EntryAgents, entry: VaultEntry): string {
  const parts: string[] = [];
  const status = new Map(entry.versions.map((v) => [v.version, v.status]));
  for (const [k, n] of Object.entries(data.byVersion).sort()) {
    if (k === "unknown") parts.push(`${n} unknown`);
    else if (k === "not_held") parts.push(`${n} not holding it`);
    else parts.push(`${n} on v${k} (${status.get(Number(k)) ?? "unknown"})`);
  }
  return parts.join(" · ") || "no agent serves this server";
}

/** Which agents use which version: per agent of the fleets serving the server, from their heartbeats. */
export function AgentsCard({ entry }: { entry: VaultEntry }) {
  const q = useEntryAgents(entry.id);
  const data = q.data;
  return (
    <Card title="Agents using this credential" className="mt-4">
      <ErrorBanner error={q.error} />
      {data ? (
        <>
          <p className="mb-3 text-sm text-slate-600" data-testid="vault-agents-summary">
            {usageSummary(data, entry)}. Each agent reports the version it holds in its heartbeat (every 15 s).
          </p>
          {data.items.length ? (
            <Table head={["Agent", "Fleet", "Last heartbeat", "Version in use"]}>
              {data.items.map((a) => (
                <tr key={a.agentId} data-testid={`vault-agent-${a.name}`}>
                  <Td>
                    <span className="font-medium">{a.name}</span> {a.online ? <Badge color="green">online</Badge> : <Badge>offline</Badge>}
                  </Td>
                  <Td>
                    <Link href={`/fleets/${a.fleetId}`} className="text-indigo-700 hover:underline">
                      {a.fleetName}
                    </Link>
                  </Td>
                  <Td>{a.lastSeenAt ? <Time iso={a.lastSeenAt} /> : "never"}</Td>
                  <Td>
                    <UseBadge use={a.use} />
                  </Td>
                </tr>
              ))}
            </Table>
          ) : (
            <p className="text-sm text-slate-500">No agent serves this server yet: add the server to a fleet and enroll an agent.</p>
          )}
          {data.truncated ? <p className="mt-2 text-xs text-slate-500">Showing the first {data.items.length} agents.</p> : null}
        </>
      ) : null}
    </Card>
  );
}
