import { fetchUpstreamCatalogue } from "@/lib/enforcement/upstream-tools";
import { DEFAULT_AGENT_EGRESS, type FetchLike } from "@/lib/net/agent";
import { redactUrlsIn } from "@/lib/enforcement/redact";
import { decisionView, driftKey as catalogueDriftKey, liveDrift, type ListKind } from "@/lib/enforcement/decide";
import type { Installed } from "./bundle-sync";
import type { Metrics } from "./metrics";
import { inject, type CredentialBroker } from "./credentials";

// Tools whose live definition no longer matches the approved hash, per installed
// bundle (a new bundle starts clean: its approvals are newer).
const drifted = new WeakMap<Installed, Set<string>>();

/** The set of `<server id>/<tool>` that changed upstream since the bundle approved them. */
export function driftOf(i: Installed): Set<string> {
  let s = drifted.get(i);
  if (!s) drifted.set(i, (s = new Set()));
  return s;
}

/** The drift set's key of a catalogue entry (lib/enforcement/decide.ts `driftKey`: `serverId/tool` for a tool). */
export const driftKey = (serverId: string, tool: string, kind: ListKind = "tools") => catalogueDriftKey(serverId, kind, tool);

/** Marks a catalogue entry (a tool by default) as changed upstream (hidden from its list, denied on use), once. */
export function markDrift(i: Installed, serverId: string, tool: string, deps: { metrics: Metrics; log: (m: string) => void }, live: string, approved: string, kind: ListKind = "tools"): void {
  const set = driftOf(i);
  const key = driftKey(serverId, tool, kind);
  if (set.has(key)) return;
  set.add(key);
  deps.metrics.hiddenChangedTools++;
  deps.log(`${kind === "tools" ? "tool" : kind} ${key} hidden and denied: its live definition (${live.slice(0, 19)}…) differs from the approved one (${approved.slice(0, 19)}…)`);
}

/**
 * Lists every upstream's catalogue (tools, resources, resource templates, prompts) itself (on each new bundle, then every
 * `everyMs`), so a changed entry is denied even when no client listed it
 * through the agent first.
 */
export class DriftWatcher {
  private timer: NodeJS.Timeout | null = null;
  private checked: Installed | null = null;
  private lastFull = 0;
  private running = false;

  constructor(
    private readonly current: () => Installed | null,
    private readonly deps: { metrics: Metrics; log: (m: string) => void; everyMs?: number; pollMs?: number; credentials?: CredentialBroker; fetch?: FetchLike },
  ) {}

  start(): void {
    this.timer = setInterval(() => void this.tick(), this.deps.pollMs ?? 1000);
    this.timer.unref();
    void this.tick();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /** Checks now when the bundle changed or the period passed. */
  async tick(force = false): Promise<void> {
    const installed = this.current();
    if (!installed || this.running) return;
    if (!force && installed === this.checked && Date.now() - this.lastFull < (this.deps.everyMs ?? 60_000)) return;
    this.running = true;
    try {
      await this.check(installed);
      this.checked = installed;
      this.lastFull = Date.now();
    } finally {
      this.running = false;
    }
  }

  private async check(installed: Installed): Promise<void> {
    for (const server of installed.content.servers) {
      let live;
      try {
        // With the credential of the server's owning tenant (or the shared one), as calls would carry it.
        const headers: Record<string, string> = {};
        const cred = this.deps.credentials ? await this.deps.credentials.resolve(installed.content, server.id, server.tenantId) : null;
        const url = inject(server.upstreamUrl, headers, cred);
        live = await fetchUpstreamCatalogue(url, { timeoutMs: 10_000, headers, fetch: this.deps.fetch ?? DEFAULT_AGENT_EGRESS.fetch });
      } catch (err) {
        this.deps.metrics.upstreamErrors++;
        // The URL may carry a vault secret in its query (api_key placement "query"): every URL in the message is redacted.
        this.deps.log(`catalogue check of ${server.id} failed: ${redactUrlsIn(err instanceof Error ? err.message : String(err))}`);
        continue;
      }
      // Tools, resources, resource templates and prompts: each approved entry whose live definition hashes otherwise.
      for (const d of liveDrift(decisionView(installed.content, { engine: installed.engine }), server.id, live)) markDrift(installed, server.id, d.name, this.deps, d.live, d.approved, d.kind);
    }
  }
}
