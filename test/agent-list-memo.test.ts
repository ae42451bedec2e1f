import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { filterListRemembered, noteUpstreamText } from "@/agent/list-memo";
import type { BundleContent } from "@/lib/enforcement/bundle";
import { decisionView, driftKey, filterList, type ListKind } from "@/lib/enforcement/decide";
import { contentOf, policy, principal, snapshotOf, toolDef } from "./decide-fixtures";

/**
 * The agent's whole-list memo (agent/list-memo.ts, issue 12) answers exactly what filterList()
 * answers for the same inputs: kept items (the current answer's own objects), hidden reasons,
 * changed entries and the record; and it remembers nothing when a policy reads the clock or the
 * caller's address, and nothing across bundle views or drift sets.
 */
const TOOLS = ["transfer", "balance", "export", "wipe", "search"];
const server = { id: "srv_a", tenantIds: ["ten_a", "ten_b"], tools: TOOLS.map((name) => ({ name, properties: {} })), mapping: { all: TOOLS, read: ["balance", "search"] } };
const POOL = [
  policy("pol_fin", "ten_a", "srv_a", `permit (principal in Group::"finance", action == Action::"list_tools", resource);`),
  policy("pol_no_wipe", "ten_a", "srv_a", `forbid (principal, action, resource == Tool::"srv_a/wipe");`),
  policy("pol_appr", "ten_a", "srv_a", `@approval("ops")\nforbid (principal, action == Action::"list_tools", resource == Tool::"srv_a/export");`),
  policy("pol_client", "ten_a", "srv_a", `forbid (principal, action, resource == Tool::"srv_a/search") when { context.client == "other" };`),
  policy("pol_scope", "ten_a", "srv_a", `permit (principal, action, resource) when { context.scopes.contains("all") };`),
];
const contents: BundleContent[] = [[0, 1, 2, 3, 4], [0, 1], [4], []].map((sub) =>
  contentOf(
    snapshotOf(
      [server],
      sub.map((i) => POOL[i]!),
    ),
  ),
);
const listed = [...TOOLS.map((n) => toolDef(n, {})), toolDef("unapproved", {}), { ...toolDef("balance", {}), description: "changed" }, { name: "" }, null, 7];
const time = new Date("2026-11-25T12:00:00Z");
const names = (xs: readonly unknown[]) => xs.map((t) => (t as { name: string }).name);

describe("filterListRemembered(): the whole-list memo answers what filterList() answers", () => {
  it("random lists, principals, bundles and growing drift sets, each list filtered several times", () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.record({
            bundle: fc.nat(contents.length - 1),
            items: fc.array(fc.nat(listed.length - 1), { maxLength: 12 }),
            user: fc.constantFrom("alice", "bob"),
            groups: fc.subarray(["finance", "ops"]),
            scopes: fc.subarray(["all", "read"]),
            client: fc.constantFrom("cli", "other"),
            tenant: fc.constantFrom("ten_a", "ten_b", "ten_x"),
            drift: fc.option(fc.constantFrom(...TOOLS), { nil: undefined }),
          }),
          { minLength: 1, maxLength: 25 },
        ),
        (steps) => {
          // One drift set per bundle view, growing as the agent's does (markDrift only adds).
          const views = contents.map((c) => decisionView(c));
          const drifts = contents.map(() => new Set<string>());
          for (const s of steps) {
            const view = views[s.bundle]!;
            const drifted = drifts[s.bundle]!;
            if (s.drift) drifted.add(driftKey("srv_a", "tools", s.drift));
            const wire = JSON.parse(JSON.stringify(s.items.map((i) => listed[i]))) as unknown[];
            const request = { serverId: "srv_a", principal: principal({ user: s.user, groups: s.groups, scopes: s.scopes, client: s.client, tenantId: s.tenant }), time };
            for (let k = 0; k < 4; k++) {
              // As the agent sees it: odd rounds the upstream message's own text (a new id each answer), even ones the items alone.
              const text = `{"result":{"tools":${JSON.stringify(s.items.map((i) => listed[i]))}},"jsonrpc":"2.0","id":${steps.length * 10 + k}}`;
              const message = JSON.parse(text) as { result: { tools: unknown[] } };
              noteUpstreamText(message, text);
              const items = k % 2 ? message.result.tools : wire;
              const want = filterList(view, request, "tools" as ListKind, items, { drifted });
              const got = filterListRemembered(view, request, "tools", items, { drifted }, k % 2 ? message.result : undefined);
              expect(got.kept.length).toBe(want.kept.length);
              got.kept.forEach((t, j) => expect(t).toBe(want.kept[j]));
              expect(got.hidden).toEqual(want.hidden);
              expect(got.changed).toEqual(want.changed);
              expect(got.record).toEqual(want.record);
            }
          }
        },
      ),
      { numRuns: 150 },
    );
  });

  it("keys an upstream message by its text without the trailing id, and only when the text ends with it", () => {
    const view = decisionView(contents[0]!);
    const request = { serverId: "srv_a", principal: principal({ groups: ["finance"] }), time };
    const drifted = new Set<string>();
    const list = JSON.stringify(TOOLS.map((n) => toolDef(n, {})));
    const parse = (text: string) => {
      const m = JSON.parse(text) as { result: { tools: unknown[] } };
      noteUpstreamText(m, text);
      return filterListRemembered(view, request, "tools", m.result.tools, { drifted }, m.result);
    };
    expect(names(parse(`{"result":{"tools":${list}},"jsonrpc":"2.0","id":1}`).kept)).toEqual(["transfer", "balance", "export", "search"]);
    // An earlier duplicate "id" member stays in the text; the last one is the id (JSON.parse keeps the last).
    expect(names(parse(`{"id":"x","result":{"tools":${list}},"jsonrpc":"2.0","id":2}`).kept)).toEqual(["transfer", "balance", "export", "search"]);
    // Same prefix, a later member overriding the tools: not the remembered list.
    const wipeOnly = JSON.stringify([toolDef("wipe", {}), toolDef("export", {})]);
    expect(names(parse(`{"result":{"tools":${list},"tools":${wipeOnly}},"jsonrpc":"2.0","id":3}`).kept)).toEqual(["export"]);
    expect(names(parse(`{"result":{"tools":${list},"tools":${wipeOnly}},"jsonrpc":"2.0","id":4}`).kept)).toEqual(["export"]);
  });

  it("answers a remembered list with the current answer's objects", () => {
    const view = decisionView(contents[0]!);
    const request = { serverId: "srv_a", principal: principal({ groups: ["finance"] }), time };
    const drifted = new Set<string>();
    const first = JSON.parse(JSON.stringify(listed)) as unknown[];
    const second = JSON.parse(JSON.stringify(listed)) as unknown[];
    expect(names(filterListRemembered(view, request, "tools", first, { drifted }).kept)).toEqual(["transfer", "balance", "export", "search"]);
    const again = filterListRemembered(view, request, "tools", second, { drifted });
    expect(names(again.kept)).toEqual(["transfer", "balance", "export", "search"]);
    again.kept.forEach((t) => expect(second).toContain(t));
  });

  it("hides an entry once the drift set names it, and an entry whose definition changed", () => {
    const view = decisionView(contents[0]!);
    const request = { serverId: "srv_a", principal: principal({ groups: ["finance"] }), time };
    const drifted = new Set<string>();
    const list = TOOLS.map((n) => toolDef(n, {}));
    expect(names(filterListRemembered(view, request, "tools", list, { drifted }).kept)).toEqual(["transfer", "balance", "export", "search"]);
    drifted.add(driftKey("srv_a", "tools", "balance"));
    expect(names(filterListRemembered(view, request, "tools", list, { drifted }).kept)).toEqual(["transfer", "export", "search"]);
    const changed = [...list.slice(0, 2), { ...list[2]!, description: "now it exports everything" }, ...list.slice(3)];
    const r = filterListRemembered(view, request, "tools", changed, { drifted });
    expect(names(r.kept)).toEqual(["transfer", "search"]);
    expect(r.changed.map((c) => c.name)).toEqual(["export"]);
  });

  it("remembers nothing across bundles: a revocation in a new (live-only) revision lists nothing", () => {
    const request = { serverId: "srv_a", principal: principal({ groups: ["finance"] }), time };
    const list = TOOLS.map((n) => toolDef(n, {}));
    const drifted = new Set<string>();
    expect(filterListRemembered(decisionView(contents[0]!), request, "tools", list, { drifted }).kept).toHaveLength(4);
    const revoked = decisionView({ ...contents[0]!, revocations: [{ tenantId: "ten_a", before: "2030-01-01T00:00:00Z" }] });
    expect(filterListRemembered(revoked, request, "tools", list, { drifted })).toMatchObject({ kept: [], record: { decision: "deny", stage: "revoked" } });
  });

  it("decides every list afresh when a policy of the server reads the clock or the address", () => {
    for (const cedar of [
      `forbid (principal, action == Action::"list_tools", resource == Tool::"srv_a/search") when { context.time.hour >= 12 };`,
      `forbid (principal, action == Action::"list_tools", resource == Tool::"srv_a/search") when { context has time && context["time"]["hour"] >= 12 };`,
    ]) {
      const content = contentOf(snapshotOf([server], [POOL[0]!, policy("pol_clock", "ten_a", "srv_a", cedar)]));
      const view = decisionView(content);
      expect(view.engine.readsClockOrAddress("srv_a", "ten_a")).toBe(true);
      const drifted = new Set<string>();
      const list = TOOLS.map((n) => toolDef(n, {}));
      const at = (iso: string) => ({ serverId: "srv_a", principal: principal({ groups: ["finance"] }), time: new Date(iso) });
      expect(names(filterListRemembered(view, at("2026-11-25T11:00:00Z"), "tools", list, { drifted }).kept)).toContain("search");
      // The same caller, list and bundle an hour later: a remembered answer would still list it.
      expect(names(filterListRemembered(view, at("2026-11-25T13:00:00Z"), "tools", list, { drifted }).kept)).not.toContain("search");
    }
    // Policies that read only the principal, scopes, client and the entry: lists are remembered.
    expect(decisionView(contents[0]!).engine.readsClockOrAddress("srv_a", "ten_a")).toBe(false);
  });
});
