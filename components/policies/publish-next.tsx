"use client";

import { useQuery } from "@tanstack/react-query";
import Link from "next/link";
import { apiFetch, keys } from "@/lib/client/api";

interface FleetRow {
  id: string;
  name: string;
  activeRevision: number | null;
  serverIds: string[];
}

/**
 * After a save: the fleets whose agents serve this policy's server, each with
 * a "Review and publish" link to its draft diff (a saved policy is enforced
 * only once a fleet publishes it). Owners publish; others are told so.
 */
export function PublishNext({ serverId, canPublish }: { serverId: string; canPublish: boolean }) {
  const fleets = useQuery({ queryKey: keys.fleets.all, queryFn: () => apiFetch<{ items: FleetRow[] }>("/fleets") });
  const serving = (fleets.data?.items ?? []).filter((f) => f.serverIds.includes(serverId));
  if (fleets.isPending) return null;
  if (fleets.error || serving.length === 0) {
    return (
      <p className="mt-1 text-sm">
        {fleets.error ? "The fleets could not be listed." : "No fleet serves this server yet: the policy is enforced once a fleet that serves it publishes."}{" "}
        <Link href="/fleets" className="font-medium text-indigo-700 hover:underline">
          Fleets
        </Link>
      </p>
    );
  }
  return (
    <ul className="mt-1 flex flex-wrap gap-2 text-sm" data-testid="publish-next">
      {serving.map((f) => (
        <li key={f.id}>
          <Link
            href={`/fleets/${encodeURIComponent(f.id)}#publish`}
            className="inline-flex items-center rounded-md bg-indigo-600 px-2.5 py-1 font-medium text-white hover:bg-indigo-500 focus-visible:outline focus-visible:outline-2 focus-visible:outline-offset-2 focus-visible:outline-indigo-600"
          >
            {canPublish ? "Review and publish" : "Review the draft"}: {f.name}
          </Link>
        </li>
      ))}
    </ul>
  );
}
