import { createCipheriv, createDecipheriv, generateKeyPairSync, randomBytes, createPrivateKey, type KeyObject } from "node:crypto";
import { eq } from "drizzle-orm";
import { CompactSign, type JWK } from "jose";
import type { Db } from "@/db/client";
import { signingKeys } from "@/db/schema";
import type { SignaturePayload } from "@/lib/enforcement/bundle";

/** A key-encryption key: 32 bytes that never enter the database, with an id so it can rotate. */
export interface Kek {
  id: string;
  key: Buffer;
  /** Previous keys during a KEK rotation: data they sealed stays readable until it is rewrapped. */
  previous?: readonly Kek[];
}

/** The keys that can open sealed data: the active one first, then the previous ones. */
export function keyringOf(kek: Kek): readonly Kek[] {
  return [kek, ...(kek.previous ?? [])];
}

/** The key-encryption key with this id, or an error naming the id (the key is not configured). */
export function kekById(keyring: readonly Kek[], id: string): Kek {
  const k = keyring.find((x) => x.id === id);
  if (!k) throw new Error(`key-encryption key "${id}" is not configured (set it as MANDATE_KEK or in MANDATE_KEK_PREVIOUS)`);
  return k;
}

/** AES-256-GCM with the associated data bound in; output `v1.<iv>.<tag>.<ciphertext>` (base64url). */
export function seal(kek: Kek, plaintext: Buffer, aad: string): string {
  const iv = randomBytes(12);
  const c = createCipheriv("aes-256-gcm", kek.key, iv);
  c.setAAD(Buffer.from(aad));
  const ct = Buffer.concat([c.update(plaintext), c.final()]);
  return ["v1", iv.toString("base64url"), c.getAuthTag().toString("base64url"), ct.toString("base64url")].join(".");
}

export function unseal(kek: Kek, sealed: string, aad: string): Buffer {
  const [v, iv, tag, ct] = sealed.split(".");
  if (v !== "v1" || !iv || !tag || ct === undefined) throw new Error("sealed value has an unknown format");
  // The tag length is pinned: without it GCM accepts a truncated tag (as short as 4 bytes), which weakens forgery resistance.
  const tagBytes = Buffer.from(tag, "base64url");
  if (tagBytes.length !== 16) throw new Error("sealed value has a malformed tag");
  const d = createDecipheriv("aes-256-gcm", kek.key, Buffer.from(iv, "base64url"), { authTagLength: 16 });
  d.setAAD(Buffer.from(aad));
  d.setAuthTag(tagBytes);
  return Buffer.concat([d.update(Buffer.from(ct, "base64url")), d.final()]);
}

export interface ActiveKey {
  kid: string;
  privateKey: KeyObject;
  publicJwk: JWK;
}

function newKid() {
  return `mk_${new Date().toISOString().slice(0, 10).replaceAll("-", "")}_${randomBytes(4).toString("hex")}`;
}

async function insertKey(db: Db, kek: Kek): Promise<ActiveKey> {
  const { publicKey, privateKey } = generateKeyPairSync("ed25519");
  const kid = newKid();
  const publicJwk = { ...(publicKey.export({ format: "jwk" }) as JWK), kid, alg: "EdDSA", use: "sig" };
  const pkcs8 = privateKey.export({ format: "der", type: "pkcs8" });
  await db.insert(signingKeys).values({ kid, publicJwk: publicJwk as unknown as Record<string, string>, sealedPrivateKey: seal(kek, pkcs8, signingKeyAad(kid)), kekId: kek.id });
  return { kid, privateKey, publicJwk };
}

/** AAD of a sealed signing key. */
export const signingKeyAad = (kid: string) => `signing-key:${kid}`;

/**
 * The active signing key, created on first use. It is opened with the key
 * its row names (the active KEK or a previous one, during a KEK rotation).
 * A missing or wrong key-encryption key fails here, loudly.
 */
export async function activeSigningKey(db: Db, kek: Kek): Promise<ActiveKey> {
  const [row] = await db.select().from(signingKeys).where(eq(signingKeys.status, "active"));
  if (!row) return insertKey(db, kek);
  const opener = keyringOf(kek).find((k) => k.id === row.kekId);
  if (!opener) throw new Error(`signing key ${row.kid} is sealed with key-encryption key ${row.kekId}, which is not configured (active: ${kek.id}; add it to MANDATE_KEK_PREVIOUS)`);
  let der: Buffer;
  try {
    der = unseal(opener, row.sealedPrivateKey, signingKeyAad(row.kid));
  } catch {
    throw new Error(`cannot unseal signing key ${row.kid}: key-encryption key "${opener.id}" is wrong`);
  }
  return { kid: row.kid, privateKey: createPrivateKey({ key: der, format: "der", type: "pkcs8" }), publicJwk: row.publicJwk as unknown as JWK };
}

/** Makes a new key active; the old one is retired but stays listed so agents can still verify its bundles. */
export async function rotateSigningKey(db: Db, kek: Kek): Promise<ActiveKey> {
  return db.transaction(async (tx) => {
    await tx.update(signingKeys).set({ status: "retired", retiredAt: new Date() }).where(eq(signingKeys.status, "active"));
    return insertKey(tx, kek);
  });
}

/** Every public key (active and retired) by key id: what agents pin. */
export async function publicKeys(db: Db): Promise<Record<string, JWK>> {
  const rows = await db.select().from(signingKeys);
  return Object.fromEntries(rows.map((r) => [r.kid, r.publicJwk as unknown as JWK]));
}

/** A compact JWS (EdDSA) over the bundle's hash, fleet and revision. */
export async function signPayload(key: ActiveKey, payload: SignaturePayload): Promise<string> {
  return new CompactSign(new TextEncoder().encode(JSON.stringify(payload))).setProtectedHeader({ alg: "EdDSA", kid: key.kid, typ: "mandate-bundle+jws" }).sign(key.privateKey);
}
