import "server-only";
import { bootstrapOwner } from "@/lib/auth/users";
import { activeSigningKey } from "@/lib/bundles/signing";
import { runRetention, startRetentionJob } from "@/lib/decisions/retention";
import { getDbHandle } from "@/lib/db";
import { getEnv } from "@/lib/env";
import { startFindingsJob } from "@/lib/findings/digest";
import { egressPolicy } from "@/lib/net/policy";
import { vaultStartup } from "@/lib/vault/startup";

/** Opens and migrates the database, then creates the first owner if there is none. */
export async function bootstrap(): Promise<void> {
  const env = getEnv();
  const started = performance.now();
  const { db, driver } = await getDbHandle();
  await bootstrapOwner(db, {
    email: env.MANDATE_OWNER_EMAIL,
    password: env.MANDATE_OWNER_PASSWORD,
    announce: (email, password) => {
      // Printed once, on the first start only; the owner must change it at first sign-in.
      console.log(`\n  First owner created. Sign in at ${env.NEXTAUTH_URL}/login with\n    e-mail:   ${email}\n    password: ${password}\n  (one-time password: you will be asked to change it)\n`);
    },
  });
  // The decision log's daily partitions a week ahead, and retention; then hourly (unref'd timer).
  await runRetention(db);
  startRetentionJob(db);
  // Least-privilege findings, daily privilege scores and the weekly digest: hourly, once across replicas.
  startFindingsJob(db, { keyring: env.keyring, egress: egressPolicy(), baseUrl: env.NEXTAUTH_URL });
  // Every key-encryption key in use must be configured and open its data (fails the start, naming the key id); then rewrap into the active one.
  await vaultStartup(db, env.kek, env.keyring);
  // Unseals (or creates) the bundle-signing key now: a missing or wrong key-encryption key stops the start.
  const key = await activeSigningKey(db, env.kek);
  console.log(`[mandate] bundle signing key ${key.kid} (sealed with ${env.kek.id})`);
  console.log(`[mandate] database ready (${driver === "pglite" ? `embedded PGlite in ${env.MANDATE_DATA_DIR}` : "PostgreSQL"}) in ${Math.round(performance.now() - started)} ms`);
}
