"use client";

import { use } from "react";
import { ConnectRequest } from "@/components/connections/connect-request";
import { PageHeader } from "@/components/ui";

/** Where an agent's URL elicitation sends a user whose upstream account is not connected (brokered per-user OAuth). */
export default function ConnectRequestPage({ params }: { params: Promise<{ requestId: string }> }) {
  const { requestId } = use(params);
  return (
    <>
      <PageHeader title="Connect an upstream account" />
      <ConnectRequest id={requestId} />
    </>
  );
}
