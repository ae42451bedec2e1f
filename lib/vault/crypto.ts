import "server-only";
import { createHmac, hkdfSync, randomBytes } from "node:crypto";
import { kekById, seal, unseal, type Kek } from "@/lib/bundles/signing";

/*
 * Envelope encryption of vault secrets. Each version has its own random
 * 32-byte data key; the secret is sealed with it (AES-256-GCM, AAD binds the
 * entry and version, so a ciphertext moved to another row fails), and the data
 * key is sealed with the key-encryption key (AAD binds entry and version too).
 * Rotating the KEK rewraps data keys only; ciphertexts never change.
 */

/** The secret of one version, by kind: api_key and bearer a string; basic a user and password; OAuth the client secret. */
export type SecretPayload = string | { username: string; password: string } | { clientSecret: string };

/** What is stored for one version: never the secret in clear. */
export interface SealedSecret {
  ciphertext: string;
  wrappedKey: string;
  kekId: string;
  fingerprint: string;
  lastChars: string;
}

export const secretAad = (entryId: string, version: number) => `vault:${entryId}:${version}`;
export const dataKeyAad = (entryId: string, version: number) => `vault-dek:${entryId}:${version}`;

/** The text a fingerprint and the last characters are taken from. */
function secretText(p: SecretPayload): string {
  if (typeof p === "string") return p;
  if ("clientSecret" in p) return p.clientSecret;
  return `${p.username}:${p.password}`;
}

function lastSource(p: SecretPayload): string {
  if (typeof p === "string") return p;
  if ("clientSecret" in p) return p.clientSecret;
  return p.password;
}

/**
 * 12 hex characters of HMAC-SHA-256 over the secret, under a fingerprint key
 * derived from the KEK (HKDF, its own label): enough to tell two versions apart
 * or to check, through Mandate, a secret one holds. Keyed so that a reader of
 * the vault page cannot test guesses offline (a basic-auth `user:password` or
 * a short API key is guessable; an unkeyed hash of it is a dictionary target).
 * Stored with the version: a KEK rotation leaves existing fingerprints as they
 * are, and later versions are fingerprinted under the new key.
 */
export function fingerprint(kek: Kek, p: SecretPayload): string {
  const key = Buffer.from(hkdfSync("sha256", kek.key, Buffer.alloc(0), "mandate-vault-fingerprint", 32));
  try {
    return createHmac("sha256", key).update(secretText(p)).digest("hex").slice(0, 12);
  } finally {
    key.fill(0);
  }
}

/** The last 4 characters, only for secrets of 16 characters or more (shorter ones would give away too much). */
export function lastChars(p: SecretPayload): string {
  const s = lastSource(p);
  return [...s].length >= 16 ? [...s].slice(-4).join("") : "";
}

/** Seals one version's secret under a fresh data key, itself sealed with `kek`. */
export function sealSecret(kek: Kek, entryId: string, version: number, payload: SecretPayload): SealedSecret {
  const dataKey = randomBytes(32);
  try {
    const ciphertext = seal({ id: "dek", key: dataKey }, Buffer.from(JSON.stringify(payload), "utf8"), secretAad(entryId, version));
    const wrappedKey = seal(kek, dataKey, dataKeyAad(entryId, version));
    return { ciphertext, wrappedKey, kekId: kek.id, fingerprint: fingerprint(kek, payload), lastChars: lastChars(payload) };
  } finally {
    dataKey.fill(0);
  }
}

/** Opens a version's data key with the KEK its row names. Throws on a missing key or any tampering. */
export function unwrapDataKey(keyring: readonly Kek[], entryId: string, version: number, row: { wrappedKey: string; kekId: string }): Buffer {
  const kek = kekById(keyring, row.kekId);
  let key: Buffer;
  try {
    key = unseal(kek, row.wrappedKey, dataKeyAad(entryId, version));
  } catch {
    throw new Error(`cannot unwrap the data key of vault version ${entryId}#${version} with key-encryption key "${kek.id}" (wrong key or tampered row)`);
  }
  if (key.length !== 32) throw new Error(`the data key of vault version ${entryId}#${version} is malformed`);
  return key;
}

/** Decrypts one version's secret. Any tampering (ciphertext, wrapped key, entry/version, KEK) throws; it never returns wrong data. */
export function openSecret(keyring: readonly Kek[], entryId: string, version: number, row: { ciphertext: string; wrappedKey: string; kekId: string }): SecretPayload {
  const dataKey = unwrapDataKey(keyring, entryId, version, row);
  let clear: Buffer;
  try {
    clear = unseal({ id: "dek", key: dataKey }, row.ciphertext, secretAad(entryId, version));
  } catch {
    throw new Error(`cannot decrypt vault version ${entryId}#${version} (tampered ciphertext or wrong entry/version)`);
  } finally {
    dataKey.fill(0);
  }
  return JSON.parse(clear.toString("utf8")) as SecretPayload;
}

/** The data key of a version re-sealed with `active` (KEK rotation); the ciphertext is untouched. */
export function rewrapDataKey(keyring: readonly Kek[], active: Kek, entryId: string, version: number, row: { wrappedKey: string; kekId: string }): { wrappedKey: string; kekId: string } {
  const dataKey = unwrapDataKey(keyring, entryId, version, row);
  try {
    return { wrappedKey: seal(active, dataKey, dataKeyAad(entryId, version)), kekId: active.id };
  } finally {
    dataKey.fill(0);
  }
}
