import "server-only";
import type { Db } from "@/db/client";
import type { Kek } from "@/lib/bundles/signing";
import { checkKeyring, rewrapAll } from "./keyring";
import { startVaultMaintenance } from "./service";

/**
 * At start: every KEK that seals something must be configured and open it
 * (fails the start, naming the key id); then anything sealed with a previous
 * KEK is rewrapped into the active one; then the rotation job starts.
 */
export async function vaultStartup(
  db: Db,
  kek: Kek,
  keyring: readonly Kek[],
  opts: { maintenance?: boolean } = {},
): Promise<{ rewrapped: { vaultVersions: number; signingKeys: number }; stop: () => void }> {
  const { kekIds } = await checkKeyring(db, keyring);
  const rewrapped = kekIds.some((id) => id !== kek.id) ? await rewrapAll(db, keyring) : { vaultVersions: 0, signingKeys: 0 };
  if (rewrapped.vaultVersions || rewrapped.signingKeys) {
    console.log(`[mandate] rewrapped ${rewrapped.vaultVersions} vault data key(s) and ${rewrapped.signingKeys} signing key(s) into key-encryption key ${kek.id}`);
  }
  const stop = opts.maintenance === false ? () => {} : startVaultMaintenance(db, kek);
  return { rewrapped, stop };
}
