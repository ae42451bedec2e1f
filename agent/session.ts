import { createHmac, createSecretKey, randomBytes, timingSafeEqual, type KeyObject } from "node:crypto";
import { chmod, readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { MAX_SESSION_ID_CHARS } from "./bounds";

/** Where the agent keeps its session-binding key (32 random bytes, base64, mode 0600). */
export const SESSION_KEY_FILE = "session-key";

/**
 * The session-binding key: the configured one (shared by every replica
 * behind one address), else the one in the data dir, created on first start.
 */
export async function loadSessionKey(dataDir: string, configured: Buffer | null): Promise<Buffer> {
  if (configured) return configured;
  const file = path.join(dataDir, SESSION_KEY_FILE);
  const text = await readFile(file, "utf8").catch((err: NodeJS.ErrnoException) => {
    if (err.code === "ENOENT") return null;
    throw err;
  });
  if (text !== null) {
    const key = Buffer.from(text.trim(), "base64");
    if (key.length < 32) throw new Error(`${file}: the session key must be at least 32 bytes (base64)`);
    return key;
  }
  const key = randomBytes(32);
  await writeFile(file, key.toString("base64") + "\n", { mode: 0o600, flag: "wx" }).catch(async (err: NodeJS.ErrnoException) => {
    // Another start created it first: use that one.
    if (err.code !== "EEXIST") throw err;
  });
  await chmod(file, 0o600);
  return Buffer.from((await readFile(file, "utf8")).trim(), "base64");
}

const VISIBLE_ASCII = /^[\x21-\x7e]+$/;

/** Most session MACs a binder remembers (ids it wrapped or verified); past it the oldest is forgotten. */
export const MAX_REMEMBERED_MACS = 10_000;
/** `MANDATE_CPU_FAST=0`: every wrap and unwrap computes its HMAC (the way before issue 12's eighth round; for bench/gateway.ts). */
const CPU_FAST = process.env.MANDATE_CPU_FAST !== "0";

/**
 * Binds an upstream's Mcp-Session-Id to the caller that opened it, with no
 * state: the client gets `<upstream id>.<HMAC-SHA256(key, server, caller,
 * upstream id)>` (base64url) and every later request must present it back
 * with the same caller. Survives restarts and works across replicas that
 * share the key; any other id is "not found" (MCP transports: 404).
 *
 * The MACs of ids this binder itself wrapped, or verified (the presented MAC
 * matched one it computed), are remembered, bounded by
 * MAX_REMEMBERED_MACS: a session's later requests skip the HMAC. The memo
 * holds the function's own output for (server, caller, upstream id) under a
 * key that never changes, so it never needs dropping (bundle changes and
 * revocations are decided before the id is looked at); an id never verified
 * is not remembered, so a caller sending made-up ids cannot fill it. The
 * presented MAC is still compared with timingSafeEqual, hit or miss.
 */
export class SessionBinder {
  private readonly key: KeyObject;
  private readonly macs = new Map<string, string>();

  constructor(key: Buffer) {
    this.key = createSecretKey(key);
  }

  /** The MAC of `${serverId}\0${who}\0${upstreamId}` (also the memo's key: the memo is exactly this function's). */
  private mac(input: string): string {
    return createHmac("sha256", this.key).update(input).digest("base64url");
  }

  private remember(k: string, mac: string): void {
    if (this.macs.size >= MAX_REMEMBERED_MACS) this.macs.delete(this.macs.keys().next().value!);
    this.macs.set(k, mac);
  }

  /** The id the client sees for an upstream session id. */
  wrap(serverId: string, who: string, upstreamId: string): string {
    const k = `${serverId}\u0000${who}\u0000${upstreamId}`;
    if (!CPU_FAST) return `${upstreamId}.${this.mac(k)}`;
    let mac = this.macs.get(k);
    if (mac === undefined) this.remember(k, (mac = this.mac(k)));
    return `${upstreamId}.${mac}`;
  }

  /** The upstream id behind a client's session id, or null when it is not one this caller was given for this server. */
  unwrap(serverId: string, who: string, clientId: string): string | null {
    if (clientId.length > MAX_SESSION_ID_CHARS || !VISIBLE_ASCII.test(clientId)) return null;
    const dot = clientId.lastIndexOf(".");
    if (dot <= 0) return null;
    const upstreamId = clientId.slice(0, dot);
    const k = `${serverId}\u0000${who}\u0000${upstreamId}`;
    const known = CPU_FAST ? this.macs.get(k) : undefined;
    const expectedMac = known ?? this.mac(k);
    const given = Buffer.from(clientId.slice(dot + 1));
    const expected = Buffer.from(expectedMac);
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) return null;
    if (CPU_FAST && known === undefined) this.remember(k, expectedMac);
    return upstreamId;
  }

  /** How many MACs are remembered (for tests). */
  get remembered(): number {
    return this.macs.size;
  }
}

/** Ids of what one caller sent in one session, bounded. */
const MAX_IDS_PER_SESSION = 1024;
/** Every tracked id of every session together, bounded (the least recently used session goes first). */
const MAX_IDS_TOTAL = 200_000;

/** A JSON-RPC id as a map key: a string and a number never collide. */
export const idKey = (id: string | number): string => (typeof id === "string" ? `s:${id}` : `n:${id}`);

/**
 * The requests the agent forwarded, per (caller, server, upstream session):
 * JSON-RPC id → method. An upstream message that answers a request is let
 * through only when its id is one of these, on whatever stream it comes
 * (the POST's, a standalone GET or one resumed with Last-Event-ID), and a
 * tools/list answer is filtered wherever it arrives. An id once used for
 * tools/list stays tools/list, so reusing it for another method cannot
 * unfilter a replayed list.
 */
export class RequestTracker {
  private readonly sessions = new Map<string, Map<string, string>>();
  private total = 0;

  /** Records a forwarded request. */
  forwarded(session: string, id: string | number, method: string): void {
    let ids = this.sessions.get(session);
    if (ids) {
      // Most recently used last.
      this.sessions.delete(session);
      this.sessions.set(session, ids);
    } else {
      ids = new Map();
      this.sessions.set(session, ids);
    }
    const k = idKey(id);
    const prev = ids.get(k);
    if (prev !== undefined) {
      if (prev === "tools/list") return;
      ids.delete(k);
      this.total--;
    }
    ids.set(k, method);
    this.total++;
    if (ids.size > MAX_IDS_PER_SESSION) {
      ids.delete(ids.keys().next().value!);
      this.total--;
    }
    while (this.total > MAX_IDS_TOTAL) {
      const [oldest, oldIds] = this.sessions.entries().next().value!;
      this.sessions.delete(oldest);
      this.total -= oldIds.size;
    }
  }

  /** The method of a request forwarded in this session with this id, or undefined. */
  methodOf(session: string, id: string | number): string | undefined {
    return this.sessions.get(session)?.get(idKey(id));
  }

  /** Forgets a session (deleted by its caller). */
  end(session: string): void {
    const ids = this.sessions.get(session);
    if (!ids) return;
    this.total -= ids.size;
    this.sessions.delete(session);
  }

  get size(): number {
    return this.total;
  }
}
