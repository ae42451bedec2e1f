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
  const d = createDecipheriv("aes-256-gcm", kek.key, Buffer.from(iv, "base64url"));
  d.setAAD(Buffer.from(aad));
  d.setAuthTag(Buffer.from(tag, "base64url"));
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
  await db.insert(signingKeys).values({ kid, publicJwk: publicJwk as unknown as Record<string, string>, sealedPrivateKey: seal(kek, pkcs8, `signing-key:${kid}`), kekId: kek.id });
  return { kid, privateKey, publicJwk };
}

/** The active signing key, created on first use. A wrong key-encryption key fails here, loudly. */
export async function activeSigningKey(db: Db, kek: Kek): Promise<ActiveKey> {
  const [row] = await db.select().from(signingKeys).where(eq(signingKeys.status, "active"));
  if (!row) return insertKey(db, kek);
  if (row.kekId !== kek.id) throw new Error(`signing key ${row.kid} is sealed with key-encryption key ${row.kekId}, but ${kek.id} is configured`);
  let der: Buffer;
  try {
    der = unseal(kek, row.sealedPrivateKey, `signing-key:${row.kid}`);
  } catch {
    throw new Error(`cannot unseal signing key ${row.kid}: wrong key-encryption key ${kek.id}`);
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
