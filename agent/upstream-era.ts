import type { Installed } from "./bundle-sync";
import { isModernVersion, UNSUPPORTED_PROTOCOL_VERSION } from "./protocol";

/**
 * What an upstream speaks, learned by asking it `server/discover` (the
 * 2026-07-28 probe): the stateless revisions it supports (empty: it answered
 * as a handshake-era server does, so only `initialize` sessions reach it).
 */
export interface UpstreamEra {
  modern: string[];
  /** When it was learned (ms). */
  at: number;
}

/** How long a learned era is kept before the upstream is asked again (an upgraded upstream is noticed). */
export const ERA_TTL_MS = 5 * 60_000;
/** Longest wait for the probe's answer. */
export const ERA_PROBE_TIMEOUT_MS = 10_000;

/** The probe's answer as the agent read it: HTTP status and the JSON body (or undefined). */
export interface ProbeAnswer {
  status: number;
  json: unknown;
}

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);

/**
 * Reads the era from a `server/discover` answer (versioning, "Backward
 * Compatibility"): a result with `supportedVersions`, or an
 * UnsupportedProtocolVersionError (-32022) with `data.supported`, is a
 * stateless-era server; anything else (a 4xx without a recognized modern
 * error, a handshake server's "no session" answer) is a handshake-era one.
 */
export function eraOf(a: ProbeAnswer): string[] {
  const m = Array.isArray(a.json) ? a.json[0] : a.json;
  if (!isRecord(m)) return [];
  if (isRecord(m.result) && Array.isArray(m.result.supportedVersions)) return m.result.supportedVersions.filter((v): v is string => typeof v === "string" && isModernVersion(v));
  if (isRecord(m.error) && m.error.code === UNSUPPORTED_PROTOCOL_VERSION && isRecord(m.error.data) && Array.isArray(m.error.data.supported)) {
    return m.error.data.supported.filter((v): v is string => typeof v === "string" && isModernVersion(v));
  }
  return [];
}

/**
 * The era of each upstream, per installed bundle (a new bundle, whose
 * upstream URL or credential may differ, starts over) and for ERA_TTL_MS.
 * Concurrent requests share one probe; a probe that fails (network, 5xx,
 * timeout) is not remembered.
 */
export class UpstreamEras {
  private readonly byBundle = new WeakMap<Installed, Map<string, Promise<UpstreamEra>>>();

  constructor(private readonly now: () => number = Date.now) {}

  get(installed: Installed, serverId: string, probe: () => Promise<ProbeAnswer>): Promise<UpstreamEra> {
    let m = this.byBundle.get(installed);
    if (!m) this.byBundle.set(installed, (m = new Map()));
    const held = m.get(serverId);
    if (held) return held;
    const p = probe().then((a) => {
      if (a.status >= 500) throw new Error(`upstream answered server/discover with HTTP ${a.status}`);
      const era: UpstreamEra = { modern: eraOf(a), at: this.now() };
      setTimeout(() => {
        if (m.get(serverId) === p) m.delete(serverId);
      }, ERA_TTL_MS).unref();
      return era;
    });
    m.set(serverId, p);
    p.catch(() => {
      if (m.get(serverId) === p) m.delete(serverId);
    });
    return p;
  }
}
