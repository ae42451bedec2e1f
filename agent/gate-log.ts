import net from "node:net";
import { performance } from "node:perf_hooks";
import { newDecisionId } from "./decision-id";
import { GATE_METHOD } from "@/lib/enforcement/decision-record";
import type { Metrics } from "./metrics";
import type { Principal } from "./token";
import type { DecisionWal } from "./wal";

/** One aggregation window (default). */
export const GATE_WINDOW_MS = 60_000;
/** Distinct (server, code, source, caller) keys recorded one by one per window (default); past it, sources are counted together per (server, code). */
export const GATE_MAX_KEYS = 64;
/** IPv6 sources are one source per /64 (a single host usually holds a whole /64). */
const V6_PREFIX_GROUPS = 4;

/** The reason codes of a refusal at the gate (before any MCP message was read). */
export type GateCode = "missing_token" | "invalid_request" | "invalid_token" | "invalid_dpop_proof" | "use_dpop_nonce" | "revoked" | "invalid_origin";

/** A request the gate refused: never the token, nor any part of it. */
export interface GateRefusal {
  serverId: string;
  bundleRevision: number;
  code: GateCode;
  /** A fixed description (never an echo of the token). */
  description: string;
  /** The TCP peer's address (the agent trusts no forwarding header). */
  remoteAddress: string | undefined;
  /** Present when the token verified and a later check refused it (proof, revocation): the record is the caller's tenant's. */
  principal?: Principal | null;
  /** Policies that determined a denial at the gate (revocation), if any. */
  determining?: string[];
}

export interface GateLogOptions {
  windowMs?: number;
  maxKeys?: number;
}

interface Entry {
  first: GateRefusal;
  source: string;
  /** Refusals after the first in this window (answered at once, recorded together at the window's end). */
  more: number;
}

/** The source a refusal is counted under: the IPv4 address, the IPv6 /64, or "unknown". */
export function sourceOf(address: string | undefined): string {
  if (!address) return "unknown";
  const bare = address.replace(/^::ffff:(?=\d+\.\d+\.\d+\.\d+$)/i, "");
  if (net.isIPv4(bare)) return bare;
  if (!net.isIPv6(bare)) return "unknown";
  // Expand "::" and keep the first four groups.
  const [head = "", tail = ""] = bare.toLowerCase().split("::");
  const h = head ? head.split(":") : [];
  const t = bare.includes("::") ? (tail ? tail.split(":") : []) : [];
  const groups = bare.includes("::") ? [...h, ...Array<string>(8 - h.length - t.length).fill("0"), ...t] : h;
  return `${groups
    .slice(0, V6_PREFIX_GROUPS)
    .map((g) => g.replace(/^0+(?=.)/, ""))
    .join(":")}::/64`;
}

/**
 * The decision records of requests refused at the agent's gate (no token, a
 * bad token, a bad DPoP proof, a revoked grant): no answer without its
 * record, and no flood of records from a caller that holds nothing.
 *
 * Per window (GATE_WINDOW_MS), the first refusal of each key (server, code,
 * source, and the caller's tenant and user when its token verified) is
 * written to the WAL and answered only once durable; later refusals of the
 * same key are answered at once and counted, and one record per key carries
 * their count (`context.repeated`) when the window ends. At most
 * GATE_MAX_KEYS keys are recorded one by one per window; refusals of further
 * keys are counted per (server, code) under the source "(many sources)". So
 * a window writes at most 2 × (GATE_MAX_KEYS + servers × codes) lines,
 * whatever the caller sends. What a crash can lose: the counts of the
 * current window (never a first record, which is durable before its answer).
 */
export class GateLog {
  private readonly windowMs: number;
  private readonly maxKeys: number;
  private entries = new Map<string, Entry>();
  private keyed = 0;
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly d: { wal: DecisionWal; metrics: Metrics; agentId: () => string | null; log: (msg: string) => void },
    opts: GateLogOptions = {},
  ) {
    this.windowMs = opts.windowMs ?? GATE_WINDOW_MS;
    this.maxKeys = opts.maxKeys ?? GATE_MAX_KEYS;
    this.timer = setInterval(() => void this.flush(), this.windowMs);
    this.timer.unref();
  }

  /**
   * Records a refusal: a promise that resolves once its record is durable
   * (the first of its key in this window) or at once (a counted repeat);
   * rejects when the WAL cannot take it (the caller must not answer 401).
   */
  refuse(r: GateRefusal): Promise<void> {
    this.d.metrics.decision("deny", 0);
    const p = r.principal;
    const caller = p ? `${p.tenantId}\u0000${p.user}` : "";
    let source = sourceOf(r.remoteAddress);
    let key = `${r.serverId}\u0000${r.code}\u0000${source}\u0000${caller}`;
    let e = this.entries.get(key);
    let counted = false;
    if (!e && this.keyed >= this.maxKeys) {
      // Past the bound: every further source of this (server, code) shares one count, unattributed.
      source = "(many sources)";
      key = `${r.serverId}\u0000${r.code}\u0000${source}`;
      e = this.entries.get(key);
      r = { ...r, principal: null, determining: [] };
    } else if (!e) {
      this.keyed++;
      counted = true;
    }
    if (e) {
      e.more++;
      return Promise.resolve();
    }
    const entry: Entry = { first: r, source, more: 0 };
    this.entries.set(key, entry);
    return this.write(r, source).catch((err: unknown) => {
      // The first record of this key is not durable: forget the key, so the
      // next refusal of it tries to write again (and is refused with 503 while
      // the log stays closed) instead of being answered as a counted repeat.
      if (this.entries.get(key) === entry) {
        this.entries.delete(key);
        if (counted) this.keyed--;
      }
      throw err;
    });
  }

  /** Writes one record per key whose repeats were counted, and starts a new window. */
  flush(): Promise<void> {
    const ended = this.entries;
    this.entries = new Map();
    this.keyed = 0;
    const writes: Promise<void>[] = [];
    for (const e of ended.values()) {
      if (e.more === 0) continue;
      const w = this.write(e.first, e.source, e.more);
      writes.push(w.catch((err: unknown) => this.d.log(`decision log: the count of ${e.more} refused request(s) was not written: ${err instanceof Error ? err.message : String(err)}`)));
    }
    return Promise.all(writes).then(() => undefined);
  }

  /** Stops the window timer and writes the counts of the current window. */
  close(): Promise<void> {
    clearInterval(this.timer);
    return this.flush();
  }

  /** The record of a first refusal, or (`repeated`) of the count of its repeats in a window. */
  private write(r: GateRefusal, source: string, repeated?: number): Promise<void> {
    const description = repeated ? `${repeated} more like this in ${Math.round(this.windowMs / 1000)} s, answered at once (the first is recorded in full): ${r.description}` : r.description;
    const started = performance.now();
    const p = r.principal;
    return this.d.wal.append({
      id: newDecisionId(),
      time: new Date().toISOString(),
      agentId: this.d.agentId(),
      bundleRevision: r.bundleRevision,
      // Unauthenticated: no tenant, user or client (only owners and global auditors read such records).
      tenantId: p?.tenantId ?? null,
      serverId: r.serverId,
      method: GATE_METHOD,
      tool: null,
      user: p?.user ?? null,
      client: p?.client ?? null,
      scopes: p?.scopes ?? [],
      outcome: "deny",
      determining: r.determining ?? [],
      reason: `${r.code}: ${description}`,
      latencyUs: Math.round((performance.now() - started) * 1000),
      args: null,
      context: { ip: source, ...(p ? { token: { iss: p.issuer, iat: p.iat, exp: p.exp } } : {}), ...(repeated ? { repeated } : {}) },
    });
  }
}
