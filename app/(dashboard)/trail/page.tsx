"use client";

import { useState } from "react";
import { useTenant } from "@/components/shell/context";
import { TrailTable } from "@/components/trail/trail-table";
import { PageHeader, SearchBox } from "@/components/ui";

export default function TrailPage() {
  const { tenantId } = useTenant();
  const [action, setAction] = useState("");
  const [actor, setActor] = useState("");
  return (
    <>
      <PageHeader title="Admin trail" description="Every change made in Mandate: who, what, when, and the values before and after. Newest first." />
      <div className="mb-3 flex flex-wrap gap-2">
        <SearchBox value={action} onChange={setAction} placeholder="Action (e.g. server.update or tool.)" />
        <SearchBox value={actor} onChange={setActor} placeholder="Who (e-mail or token)" />
      </div>
      <TrailTable tenantId={tenantId} action={action} actor={actor} />
    </>
  );
}
