/**
 * Least-privilege findings on a seeded month of traffic (test/least-privilege-fixture.ts,
 * SCALE times the calls per day): how many findings of each kind, the time to
 * compute one tenant's findings (median of 5, and the all-tenant owner view),
 * the remedy preview's time, and the privilege score before and after applying
 * the remedies (narrow every unused scope mapping, the least-privilege policy
 * of the over-broad user, revoke the unused grants).
 *
 *   DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres SCALE=100 node --import ./bench/no-server-only.mjs --import tsx bench/findings.ts
 *
 * Without DATABASE_URL it runs on embedded PGlite. A fresh database, dropped after.
 */
import { randomBytes } from "node:crypto";
import { loadavg } from "node:os";
import { computeFindings } from "@/lib/findings/compute";
import { applyRemedy, listFindings, previewRemedy } from "@/lib/findings/service";
import { revokeGrant } from "@/lib/grants/service";
import { createTestDb, makeTenant, makeUser } from "../test/db";
import { seedMonth } from "../test/least-privilege-fixture";

const SCALE = Number(process.env.SCALE ?? 100);
const kek = { id: "kek-bench", key: randomBytes(32) };
const t = await createTestDb();
try {
  const owner = await makeUser(t.db, { role: "owner" });
  const a = await makeTenant(t.db, owner.actor, "Acme");
  const b = await makeTenant(t.db, owner.actor, "Beta");
  const admin = await makeUser(t.db, { memberships: [[a.id, "admin"]] });
  const t0 = performance.now();
  const seed = await seedMonth(owner.ctx, a.id, b.id, kek, { scale: SCALE });
  console.log(
    `driver ${t.driver}; seeded ${seed.decisions.toLocaleString("en")} decisions over 30 days (scale ${SCALE}) in ${((performance.now() - t0) / 1000).toFixed(1)} s; load ${loadavg()
      .map((x) => x.toFixed(1))
      .join(" ")}`,
  );

  const times: number[] = [];
  let r = await listFindings(admin.ctx, { tenantId: a.id });
  for (let i = 0; i < 5; i++) {
    r = await listFindings(admin.ctx, { tenantId: a.id });
    times.push(r.tookMs);
  }
  times.sort((x, y) => x - y);
  const all = await listFindings(owner.ctx, {});
  const perKind = Object.entries(all.counts)
    .filter(([, n]) => n)
    .map(([k, n]) => `${k} ${n}`);
  console.log(`findings (all tenants + fleet-wide): ${all.items.length}: ${perKind.join(", ")}`);
  console.log(
    `findings of tenant A: ${r.items.length}: ${Object.entries(r.counts)
      .filter(([, n]) => n)
      .map(([k, n]) => `${k} ${n}`)
      .join(", ")}`,
  );
  console.log(`compute tenant A: median ${times[2]} ms (min ${times[0]}, max ${times[4]}); owner view of every tenant: ${all.tookMs} ms`);
  // The same computation from the raw log (the code before the usage rollup) and from the rollups, on the same data, same run.
  // One instant for every computation, so their windows (and `evidence.since`) are the same.
  const at = new Date();
  for (const raw of [true, false]) {
    const one: number[] = [];
    const every: number[] = [];
    let same = true;
    const ref = await computeFindings(t.db, { tenantIds: [a.id], global: false, settings: new Map(), now: at, raw: !raw });
    for (let i = 0; i < 5; i++) {
      const x = await computeFindings(t.db, { tenantIds: [a.id], global: false, settings: new Map(), now: at, raw });
      one.push(x.tookMs);
      same &&= JSON.stringify(x.findings) === JSON.stringify(ref.findings) && JSON.stringify(x.scores) === JSON.stringify(ref.scores);
      every.push((await computeFindings(t.db, { tenantIds: [a.id, b.id], global: true, settings: new Map(), now: at, raw })).tookMs);
    }
    one.sort((x, y) => x - y);
    every.sort((x, y) => x - y);
    console.log(
      `computeFindings from ${raw ? "the raw log" : "the rollups "}: tenant A median ${one[2]} ms (min ${one[0]}, max ${one[4]}); both tenants + fleet-wide median ${every[2]} ms; same findings as the ${raw ? "rollups" : "raw log"}: ${same}; load ${loadavg()[0]!.toFixed(1)}`,
    );
  }
  const before = r.scores[0]!;

  const unused = r.items.filter((f) => f.kind === "unused_scope_mapping");
  const tp = performance.now();
  const p = await previewRemedy(admin.ctx, unused[0]!.id, { action: "narrow_mapping", acknowledgeFlips: false });
  console.log(
    `remedy preview (${unused[0]!.subject.id}): ${p.impact.replayed.toLocaleString("en")} decisions replayed, ${p.impact.allowToDeny} allow→deny, ${p.impact.denyToAllow} deny→allow, ${Math.round(performance.now() - tp)} ms`,
  );

  const bob = r.items.find((f) => f.kind === "over_broad_user" && f.subject.id === "bob");
  if (bob) await applyRemedy(admin.ctx, bob.id, { action: "least_privilege_policy", acknowledgeFlips: false });
  for (const f of unused) await applyRemedy(admin.ctx, f.id, { action: "narrow_mapping", acknowledgeFlips: false });
  for (const f of r.items.filter((x) => x.kind === "unused_grant")) await revokeGrant(admin.ctx, f.subject.id, { reason: "bench" }, kek);
  const after = (await listFindings(admin.ctx, { tenantId: a.id })).scores[0]!;
  console.log(
    `privilege score of tenant A: before ${before.score}% (${before.used}/${before.granted}: pairs ${before.pairs.used}/${before.pairs.granted}, grants ${before.grants.used}/${before.grants.granted})`,
  );
  console.log(
    `                           after  ${after.score}% (${after.used}/${after.granted}: pairs ${after.pairs.used}/${after.pairs.granted}, grants ${after.grants.used}/${after.grants.granted}); unused capability ${before.granted - before.used} -> ${after.granted - after.used}`,
  );
} finally {
  await t.close();
}
