import type { Metadata } from "next";
import { ConnectClient } from "@/components/connect/connect-client";

export const metadata: Metadata = { title: "Connect a client" };

export default function ConnectPage() {
  return <ConnectClient />;
}
