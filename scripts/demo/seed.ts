/**
 * Seeds the live demo before the dashboard starts (run by scripts/start.mjs,
 * the embedded database is not yet open by anyone else):
 *
 *   node --conditions=react-server --import tsx scripts/demo/seed.ts
 *
 * Env: DEMO_UPSTREAM_URL, DEMO_ISSUER, DEMO_RESOURCE_URI, DEMO_ENROLL=1 when
 * the demo agent has no stored key yet. Prints one line `DEMO_STATE {json}` on
 * stdout for the start script (the enrollment token goes only there); logs go
 * to stderr. A removed demo stays removed.
 */
import { demoAgentEnrollment, demoBundleKeys, seedDemo } from "@/lib/demo/service";
import { getDbHandle } from "@/lib/db";
import { getEnv } from "@/lib/env";

const need = (name: string) => {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is required`);
  return v;
};

const env = getEnv();
const handle = await getDbHandle();
try {
  const started = performance.now();
  const state = await seedDemo(handle.db, env.kek, { upstreamUrl: need("DEMO_UPSTREAM_URL"), issuer: need("DEMO_ISSUER"), resourceUri: need("DEMO_RESOURCE_URI") });
  if (state.status === "removed") {
    console.error("[demo] the demo was removed by an owner; not seeding it again");
    console.log(`DEMO_STATE ${JSON.stringify(state)}`);
  } else {
    const enrollment = process.env.DEMO_ENROLL === "1" ? await demoAgentEnrollment(handle.db, state.fleetId) : { token: undefined, keys: await demoBundleKeys(handle.db) };
    console.error(`[demo] ${state.created ? "seeded" : "found"} tenant ${state.tenantId} (server ${state.serverId}, fleet ${state.fleetId}) in ${Math.round(performance.now() - started)} ms`);
    // A fresh one-time token only when the agent has no stored key; the bundle keys every time.
    console.log(`DEMO_STATE ${JSON.stringify({ ...state, keys: enrollment.keys, enrollmentToken: enrollment.token })}`);
  }
} catch (err) {
  // One readable line: start.mjs goes on without the demo (the half-done seed is started over next time).
  const message = (err instanceof Error ? err.message.split("\n", 1)[0] : undefined) ?? "error";
  console.error(`[demo] could not seed the demo: ${message}`);
  if (/egress does not allow/.test(message)) console.error("[demo] on PostgreSQL set MANDATE_EGRESS_ALLOW=loopback for the demo, or MANDATE_DEMO=0 to skip it");
  process.exitCode = 1;
} finally {
  await handle.close();
}
