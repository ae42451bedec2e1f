"use client";

import { MaskingRules } from "@/components/servers/masking-rules";
import { useServer } from "@/components/servers/server-context";
import { useCanWrite } from "@/components/shell/context";

export default function MaskingPage() {
  const server = useServer();
  const canWrite = useCanWrite(server.tenantId);
  return <MaskingRules serverId={server.id} canWrite={canWrite} />;
}
