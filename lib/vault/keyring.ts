import "server-only";
import { and, asc, count, eq, gt, ne } from "drizzle-orm";
import type { Db } from "@/db/client";
import { signingKeys, vaultVersions } from "@/db/schema";
import { seal, signingKeyAad, unseal, type Kek } from "@/lib/bundles/signing";
import { rewrapDataKey, unwrapDataKey } from "./crypto";

/*
 * The key-encryption keyring: the active KEK first, then previous ones
 * (MANDATE_KEK_PREVIOUS). Everything sealed records the id of the KEK that
 * sealed it, so a rotation is: start with the new key active and the old one
 * previous, rewrap, then drop the old one.
 */

/**
 * Fails at start, with the key id, when a KEK that seals something is not
 * configured or does not open it: for every KEK id in use, one vault data key
 * and one signing key (canaries) must unwrap.
 */
export async function checkKeyring(db: Db, keyring: readonly Kek[]): Promise<{ kekIds: string[] }> {
  const [vaultIds, signingIds] = await Promise.all([
    db.select({ kekId: vaultVersions.kekId, n: count() }).from(vaultVersions).groupBy(vaultVersions.kekId),
    db.select({ kekId: signingKeys.kekId, n: count() }).from(signingKeys).groupBy(signingKeys.kekId),
  ]);
  const used = [...new Set([...vaultIds, ...signingIds].map((r) => r.kekId))].sort();
  for (const id of used) {
    const kek = keyring.find((k) => k.id === id);
    const nVault = vaultIds.find((r) => r.kekId === id)?.n ?? 0;
    const nSigning = signingIds.find((r) => r.kekId === id)?.n ?? 0;
    if (!kek) {
      throw new Error(
        `key-encryption key "${id}" seals ${nVault} vault data key(s) and ${nSigning} signing key(s) but is not configured: ` +
          `set it as MANDATE_KEK (MANDATE_KEK_ID=${id}) or add "${id}:<base64>" to MANDATE_KEK_PREVIOUS`,
      );
    }
    const [v] = await db.select().from(vaultVersions).where(eq(vaultVersions.kekId, id)).limit(1);
    if (v) {
      try {
        unwrapDataKey([kek], v.entryId, v.version, v).fill(0);
      } catch {
        throw new Error(`key-encryption key "${id}" is configured but does not open vault data keys sealed with it (wrong key for this id?)`);
      }
    }
    const [s] = await db.select().from(signingKeys).where(eq(signingKeys.kekId, id)).limit(1);
    if (s) {
      try {
        unseal(kek, s.sealedPrivateKey, signingKeyAad(s.kid)).fill(0);
      } catch {
        throw new Error(`key-encryption key "${id}" is configured but does not open signing key ${s.kid} (wrong key for this id?)`);
      }
    }
  }
  return { kekIds: used };
}

export interface RewrapResult {
  vaultVersions: number;
  signingKeys: number;
}

/**
 * Rewraps every vault data key and signing key sealed with a previous KEK into
 * the active one (keyring[0]). Each row is rewrapped in its own short
 * transaction with the row locked, so reads keep working throughout and a
 * crash leaves every row readable (old or new KEK, as its kekId says).
 */
export async function rewrapAll(db: Db, keyring: readonly Kek[], batchSize = 200): Promise<RewrapResult> {
  const active = keyring[0];
  if (!active) throw new Error("the keyring is empty");
  const out: RewrapResult = { vaultVersions: 0, signingKeys: 0 };
  let after = "";
  for (;;) {
    const batch = await db
      .select({ id: vaultVersions.id })
      .from(vaultVersions)
      .where(and(ne(vaultVersions.kekId, active.id), gt(vaultVersions.id, after)))
      .orderBy(asc(vaultVersions.id))
      .limit(batchSize);
    if (!batch.length) break;
    for (const { id } of batch) {
      const changed = await db.transaction(async (tx) => {
        const [row] = await tx.select().from(vaultVersions).where(eq(vaultVersions.id, id)).for("update");
        if (!row || row.kekId === active.id) return false;
        const next = rewrapDataKey(keyring, active, row.entryId, row.version, row);
        await tx.update(vaultVersions).set(next).where(eq(vaultVersions.id, id));
        return true;
      });
      if (changed) out.vaultVersions++;
    }
    after = batch[batch.length - 1]!.id;
  }
  const keys = await db.select({ kid: signingKeys.kid }).from(signingKeys).where(ne(signingKeys.kekId, active.id));
  for (const { kid } of keys) {
    const changed = await db.transaction(async (tx) => {
      const [row] = await tx.select().from(signingKeys).where(eq(signingKeys.kid, kid)).for("update");
      if (!row || row.kekId === active.id) return false;
      const old = keyring.find((k) => k.id === row.kekId);
      if (!old) throw new Error(`signing key ${kid} is sealed with key-encryption key "${row.kekId}", which is not configured`);
      const der = unseal(old, row.sealedPrivateKey, signingKeyAad(kid));
      try {
        await tx
          .update(signingKeys)
          .set({ sealedPrivateKey: seal(active, der, signingKeyAad(kid)), kekId: active.id })
          .where(eq(signingKeys.kid, kid));
      } finally {
        der.fill(0);
      }
      return true;
    });
    if (changed) out.signingKeys++;
  }
  return out;
}
