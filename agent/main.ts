/**
 * The data-plane agent: config → bundle sync → HTTP server.
 *
 *   npx tsx agent/main.ts --control-plane http://localhost:3000 --enrollment-token mde_… --keys keys.json --port 8080
 *
 * SIGTERM / SIGINT: stop accepting, finish in-flight requests (up to 10 s), flush the decision WAL, ship what
 * the control plane takes within the rest of the drain time (what is left stays in the data dir), exit.
 */
import type { AddressInfo } from "node:net";
import { pathToFileURL } from "node:url";
import { BundleSync } from "./bundle-sync";
import { registerApprovalReporter } from "./approval";
import { loadConfig, USAGE, type AgentConfig } from "./config";
import { Metrics } from "./metrics";
import { createAgentServer } from "./server";
import { DpopNonces, DpopVerifier } from "@/lib/enforcement/dpop";
import { DriftWatcher } from "./drift";
import { DecisionShipper, type ShipperOptions } from "./shipper";
import { TokenValidator } from "@/lib/enforcement/token";
import type { TokenValidatorLike } from "./token";
import { DecisionWal } from "./wal";
import { CredentialBroker } from "./credentials";
import { UpstreamRevoker } from "./upstream-revocation";
import { loadSessionKey } from "./session";
import { UpstreamPools } from "./upstream";
import { agentEgress, agentEgressPolicy } from "@/lib/net/agent";
import { startTracing, tracingConfig, type AgentTracing, type TracingConfig } from "./tracing";
import type { GateLogOptions } from "./gate-log";

export interface RunningAgent {
  url: string;
  sync: BundleSync;
  metrics: Metrics;
  wal: DecisionWal;
  shipper: DecisionShipper;
  credentials: CredentialBroker;
  revoker: UpstreamRevoker;
  /** Present when an OTLP endpoint was configured. */
  tracing?: AgentTracing;
  stop(): Promise<void>;
}

/** Shipper settings a caller (tests, benches) may override. */
export type ShipOptions = Pick<ShipperOptions, "intervalMs" | "maxBatchLines" | "maxBatchBytes" | "requestTimeoutMs" | "backoff" | "hooks">;

/** How long shutdown waits for in-flight requests and then for shipping, together. */
const DRAIN_MS = 10_000;

export async function startAgent(
  config: AgentConfig,
  opts: {
    validator?: TokenValidatorLike;
    log?: (m: string) => void;
    heartbeatMs?: number;
    ship?: ShipOptions;
    drainMs?: number;
    driftCheckMs?: number;
    tracing?: TracingConfig | null;
    gate?: GateLogOptions;
  } = {},
): Promise<RunningAgent> {
  const log = opts.log ?? ((m: string) => console.log(`[agent] ${m}`));
  const metrics = new Metrics();
  const wal = new DecisionWal(config.dataDir, { onError: (e) => log(`decision WAL write failed: ${e instanceof Error ? e.message : String(e)}`) });
  // The broker needs the agent key, which the sync holds once enrolled: `sync` is assigned before any call.
  let sync: BundleSync | null = null;
  // Every outbound request through the one egress guard, under the operator's policy (lib/net/agent.ts).
  const egress = agentEgress(agentEgressPolicy(config.egressAllow, config.controlPlaneUrl).policy);
  const upstreams = new UpstreamPools({ policy: egress.policy });
  const credentials = new CredentialBroker({
    controlPlaneUrl: config.controlPlaneUrl,
    agentKey: () => sync?.agentKey ?? null,
    metrics,
    log,
    fetch: egress.fetch,
    controlPlaneFetch: egress.controlPlane,
  });
  const revoker = new UpstreamRevoker({ metrics, log, fetch: egress.fetch });
  // Each bundle's upstreams are checked against the policy when it is installed, not per request (agent/upstream.ts).
  const admitUpstreams = (content: { servers: Array<{ id: string; upstreamUrl: string }> }) =>
    void upstreams.admit(content.servers.map((s) => s.upstreamUrl)).then((refused) => {
      for (const r of refused) log(`egress refuses upstream ${r.origin}: ${r.why} (calls to it answer 502; see --egress-allow)`);
    });
  // A new bundle with another credential version is fetched before the next call needs it.
  sync = new BundleSync({
    ...config,
    metrics,
    log,
    heartbeatMs: opts.heartbeatMs,
    onInstall: (i) => {
      admitUpstreams(i.content);
      credentials.prefetch(i.content);
    },
    fetch: egress.controlPlane,
    credentialsInUse: () => credentials.inUse(),
  });
  await sync.start();
  // Calls held for a person's approval are filed with the control plane by this agent (agent/approval.ts).
  const unregisterApprovals = registerApprovalReporter({
    controlPlaneUrl: config.controlPlaneUrl,
    agentKey: () => sync.agentKey,
    fleetId: () => sync.current?.content.manifest.fleetId ?? null,
    log,
    dataDir: config.dataDir,
    fetch: egress.controlPlane,
  });
  await wal.open();
  metrics.logBacklog = () => wal.backlog();
  metrics.logWrites = () => wal.writes;
  // Starts at once: segments left from before are shipped as soon as the agent key is known (stored, or after enrollment).
  const shipper = new DecisionShipper({ ...opts.ship, wal, controlPlaneUrl: config.controlPlaneUrl, agentKey: () => sync.agentKey, metrics, log, fetch: egress.controlPlane });
  shipper.start();
  // Checks the upstreams' live catalogues itself, so a changed tool is denied even before any client lists it.
  const drift = new DriftWatcher(() => sync.current, { metrics, log, everyMs: opts.driftCheckMs, credentials, fetch: egress.fetch });
  drift.start();
  const validator = opts.validator ?? new TokenValidator({ fetch: egress.fetch as typeof fetch });
  // Sessions stay bound to their callers across restarts (and replicas sharing the key).
  const sessionKey = await loadSessionKey(config.dataDir, config.sessionKey);
  // OpenTelemetry is loaded only when an OTLP endpoint is configured (agent/tracing.ts).
  const exported = (ok: boolean, n: number) => void (ok ? (metrics.tracesExported += n) : (metrics.tracesLost += n));
  const tracing = opts.tracing ? await startTracing(opts.tracing, { log, exported }) : undefined;
  const server = createAgentServer({
    current: () => sync.current,
    validator,
    metrics,
    wal,
    agentId: () => sync.agentId,
    log,
    credentials,
    revoker,
    sessionKey,
    publicOrigins: config.publicOrigins,
    freshUntil: () => sync.freshUntilMs,
    upstreams,
    dpop: new DpopVerifier({ iatWindowSeconds: config.dpopIatWindowSeconds }),
    // Shared by replicas only when --dpop-nonce-key is given (else each replica accepts only its own nonces).
    dpopNonces: new DpopNonces({ key: config.dpopNonceKey }),
    tracing,
    gate: opts.gate,
  });
  try {
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(config.port, config.host, () => resolve());
    });
  } catch (err) {
    // Nothing was decided: leave the data dir as it is.
    drift.stop();
    await Promise.all([shipper.stop(), sync.stop()]);
    await wal.close();
    throw err;
  }
  const addr = server.address() as AddressInfo;
  const host = addr.family === "IPv6" ? `[${addr.address}]` : addr.address;
  const url = `http://${host}:${addr.port}`;
  log(`listening on ${url}`);
  let stopping: Promise<void> | null = null;
  return {
    url,
    sync,
    metrics,
    wal,
    shipper,
    credentials,
    revoker,
    tracing,
    stop: () =>
      (stopping ??= (async () => {
        const drainMs = opts.drainMs ?? DRAIN_MS;
        const deadline = Date.now() + drainMs;
        const closed = new Promise<void>((resolve) => server.close(() => resolve()));
        server.closeIdleConnections();
        const force = setTimeout(() => server.closeAllConnections(), drainMs);
        force.unref();
        drift.stop();
        unregisterApprovals();
        await sync.stop();
        await closed;
        clearTimeout(force);
        await wal.flush();
        // Best effort: whatever is not acknowledged in time stays on disk and ships at the next start.
        const { left } = await shipper.flush(Math.max(1000, deadline - Date.now()));
        if (left) log(`decision log: ${left} decision(s) not yet shipped stay in ${config.dataDir}`);
        await wal.close();
        credentials.clear();
        await tracing?.shutdown().catch(() => {});
      })()),
  };
}

/** Runs the agent from the command line (flags and environment). */
export async function main(): Promise<void> {
  const r = loadConfig(process.argv.slice(2), process.env);
  if (!r.ok) {
    console.error(`mandate-agent: invalid configuration\n${r.errors.map((e) => `  - ${e}`).join("\n")}\n\n${USAGE}`);
    process.exit(2);
  }
  const t = tracingConfig(process.env);
  if (!t.ok) {
    console.error(`mandate-agent: invalid OpenTelemetry configuration\n${t.errors.map((e) => `  - ${e}`).join("\n")}`);
    process.exit(2);
  }
  const agent = await startAgent(r.config, { tracing: t.config });
  const shutdown = (signal: string) => {
    console.log(`[agent] ${signal}: shutting down`);
    agent.stop().then(
      () => process.exit(0),
      (err: unknown) => {
        console.error(err);
        process.exit(1);
      },
    );
  };
  process.once("SIGTERM", () => shutdown("SIGTERM"));
  process.once("SIGINT", () => shutdown("SIGINT"));
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((err: unknown) => {
    console.error(err);
    process.exit(1);
  });
}
