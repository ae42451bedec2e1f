import { createHmac, randomBytes, timingSafeEqual } from "node:crypto";
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

/**
 * Binds an upstream's Mcp-Session-Id to the caller that opened it, with no
 * state: the client gets `<upstream id>.<HMAC-SHA256(key, server, caller,
 * upstream id)>` (base64url) and every later request must present it back
 * with the same caller. Survives restarts and works across replicas that
 * share the key; any other id is "not found" (MCP transports: 404).
 */
export class SessionBinder {
  constructor(private readonly key: Buffer) {}

  private mac(serverId: string, who: string, upstreamId: string): string {
    return createHmac("sha256", this.key).update(`${serverId}\u0000${who}\u0000${upstreamId}`).digest("base64url");
  }

  /** The id the client sees for an upstream session id. */
  wrap(serverId: string, who: string, upstreamId: string): string {
    return `${upstreamId}.${this.mac(serverId, who, upstreamId)}`;
  }

  /** The upstream id behind a client's session id, or null when it is not one this caller was given for this server. */
  unwrap(serverId: string, who: string, clientId: string): string | null {
    if (clientId.length > MAX_SESSION_ID_CHARS || !VISIBLE_ASCII.test(clientId)) return null;
    const dot = clientId.lastIndexOf(".");
    if (dot <= 0) return null;
    const upstreamId = clientId.slice(0, dot);
    const given = Buffer.from(clientId.slice(dot + 1));
    const expected = Buffer.from(this.mac(serverId, who, upstreamId));
    return given.length === expected.length && timingSafeEqual(given, expected) ? upstreamId : null;
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
