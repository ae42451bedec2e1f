import "server-only";
import { mkdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import { getEnv } from "@/lib/env";

/**
 * Tells the local launcher (scripts/start.mjs, which started the demo's
 * agent, client and authorization server as its children) that the demo was
 * removed: it watches for this file in the data directory and stops them.
 */
export function signalDemoRemoved(): void {
  const dir = getEnv().MANDATE_DATA_DIR;
  mkdirSync(dir, { recursive: true });
  writeFileSync(path.join(dir, "demo-removed"), new Date().toISOString(), { mode: 0o600 });
}
