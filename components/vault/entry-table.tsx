"use client";

import Link from "next/link";
import { Badge, Table, Td, Time } from "@/components/ui";
import { kindLabels, placementLabel, secretHint, type VaultEntry } from "./queries";

/** Entries by server and tenant: kind, placement, current version, fingerprint, age, next rotation. */
export function EntryTable({ items }: { items: VaultEntry[] }) {
  return (
    <Table head={["Credential", "Server", "Tenant", "Kind", "Goes into", "Version", "Fingerprint", "Age", "Next rotation", "Status"]}>
      {items.map((e) => (
        <tr key={e.id} data-testid={`vault-row-${e.name}`}>
          <Td>
            <Link href={`/vault/${e.id}`} className="font-medium text-indigo-700 hover:underline">
              {e.name}
            </Link>
            {e.owner ? <div className="text-xs text-slate-500">{e.owner}</div> : null}
          </Td>
          <Td>{e.serverName}</Td>
          <Td>{e.tenantId ? (e.tenantName ?? e.tenantId) : <Badge>shared</Badge>}</Td>
          <Td>{kindLabels[e.kind] ?? e.kind}</Td>
          <Td>
            <code className="text-xs">{placementLabel(e.placement)}</code>
          </Td>
          <Td>v{e.currentVersion}</Td>
          <Td>
            <code className="text-xs">{secretHint(e.fingerprint, e.lastChars)}</code>
          </Td>
          <Td>{e.ageDays} d</Td>
          <Td>
            {e.nextRotationAt ? <Time iso={e.nextRotationAt} /> : <span className="text-slate-400">no schedule</span>}
            {e.rotationDue ? (
              <span className="ml-1">
                <Badge color="red">due</Badge>
              </span>
            ) : null}
          </Td>
          <Td>
            <Badge color={e.status === "active" ? "green" : "gray"}>{e.status}</Badge>
            {e.suspended ? (
              <span className="ml-1" title={`Stored for ${e.boundOrigin || "another upstream"}; the upstream is now ${e.upstreamOrigin ?? "elsewhere"}`}>
                <Badge color="red">suspended: upstream moved</Badge>
              </span>
            ) : null}
            {e.versions.some((v) => v.status === "scheduled") ? (
              <span className="ml-1">
                <Badge color="blue">rotation scheduled</Badge>
              </span>
            ) : null}
            {e.versions.some((v) => v.status === "grace") ? (
              <span className="ml-1">
                <Badge color="amber">old version in grace</Badge>
              </span>
            ) : null}
          </Td>
        </tr>
      ))}
    </Table>
  );
}
