"use client";

import { Badge } from "@/components/ui";
import type { PublicTool } from "@/lib/client/types";

export type ToolStatus = PublicTool["status"];
export type Risk = PublicTool["risk"];

export const toolStatuses: ToolStatus[] = ["approved", "new", "changed", "blocked"];
export const riskLevels: Risk[] = ["unrated", "low", "medium", "high", "critical"];

export const statusLabel: Record<ToolStatus, string> = {
  approved: "approved",
  new: "new, pending review",
  changed: "changed, pending review",
  blocked: "blocked",
};
const statusColor = { approved: "green", new: "blue", changed: "amber", blocked: "red" } as const;

/** The review status of a tool; carries the `tool-status` test id. */
export function ToolStatusBadge({ status }: { status: ToolStatus }) {
  return (
    <span data-testid="tool-status" data-status={status}>
      <Badge color={statusColor[status]}>{statusLabel[status]}</Badge>
    </span>
  );
}

const riskColor = { unrated: "gray", low: "green", medium: "amber", high: "red", critical: "red" } as const;
export function RiskBadge({ risk }: { risk: Risk }) {
  return <Badge color={riskColor[risk]}>{risk === "unrated" ? "risk unrated" : `${risk} risk`}</Badge>;
}

/** The MCP behaviour hints the tool declares about itself (self-reported, not enforced). */
export function HintBadges({ annotations }: { annotations: Record<string, unknown> | null | undefined }) {
  const a = annotations ?? {};
  return (
    <span className="inline-flex flex-wrap gap-1">
      {a.readOnlyHint === true ? <Badge>read-only</Badge> : null}
      {a.destructiveHint === true && a.readOnlyHint !== true ? <Badge color="amber">destructive</Badge> : null}
    </span>
  );
}

export function RemovedUpstreamBadge() {
  return (
    <span title="The upstream server no longer lists this tool (at the last import)">
      <Badge color="gray">removed upstream</Badge>
    </span>
  );
}
