/**
 * Remembered serialized list answers (agent/list-memo.ts `rememberedAnswer`, agent/proxy.ts
 * `screenText`, issue 12): a real agent in front of an upstream whose tools/list text the test
 * writes byte for byte. What the agent sends for a remembered list is compared with what the full
 * path (parse, filter, serialize; `MANDATE_LIST_MEMO=0`) sends for the same upstream text and id,
 * byte for byte, over random lists, message layouts and ids of every JSON-RPC shape; a one-byte change
 * of the upstream text is never answered from memory; a bundle change and a revocation between two
 * lists of one official MCP SDK client are honoured.
 */
import { createServer, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import fc from "fast-check";
import { eq } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { revocations, tenants } from "@/db/schema";
import { republishLiveBundles } from "@/lib/bundles/service";
import { newId } from "@/lib/ids";
import { qualifiedUser } from "@/lib/enforcement/token";
import { listMemoStats, splitIdTail } from "@/agent/list-memo";
import { MAX_UPSTREAM_MESSAGE_BYTES, pipeSse, startedSink, type Screen } from "@/agent/proxy";
import { answerHandshake, startAgentStack, type AgentStack } from "./agent-proc-harness";

let s: AgentStack;
let up: Server;
/** The approved tool definitions, as the sandbox lists them (raw JSON). */
let defs: Record<string, unknown>[];
/** What the test upstream answers a tools/list with: its message text for a given id text, SSE or JSON. */
const upstream = {
  message: (idJson: string) => `{"result":{"tools":[]},"jsonrpc":"2.0","id":${idJson}}`,
  sse: true,
  eventLines: [] as string[],
  /** Raw bytes sent before the SSE event (a hostile upstream's extra events), for the request's id text. */
  rawHead: undefined as ((idJson: string) => string) | undefined,
  /** Extra headers of its tools/list answers. */
  headers: {} as Record<string, string>,
};

/** One POST to an MCP endpoint; the answer's message from a JSON body or the last SSE event. */
async function rpc(url: string, body: unknown, headers: Record<string, string> = {}): Promise<{ status: number; headers: Headers; text: string }> {
  const res = await fetch(url, { method: "POST", headers: { "content-type": "application/json", accept: "application/json, text/event-stream", ...headers }, body: JSON.stringify(body) });
  return { status: res.status, headers: res.headers, text: await res.text() };
}
const messageOf = (text: string): Record<string, unknown> => {
  const data = text
    .split("\n")
    .filter((l) => l.startsWith("data:"))
    .map((l) => l.slice(5).trim());
  return JSON.parse(data.length ? data[data.length - 1]! : text) as Record<string, unknown>;
};

/** A session through the agent for this bearer: the client's session id. */
async function session(bearer: string): Promise<string> {
  const auth = { authorization: `Bearer ${bearer}` };
  const init = await rpc(
    `${s.resourceUri}`,
    { jsonrpc: "2.0", id: 0, method: "initialize", params: { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "bytes", version: "1" } } },
    auth,
  );
  expect(init.status).toBe(200);
  const sid = init.headers.get("mcp-session-id")!;
  expect(sid).toBeTruthy();
  expect((await rpc(s.resourceUri, { jsonrpc: "2.0", method: "notifications/initialized" }, { ...auth, "mcp-session-id": sid })).status).toBe(202);
  return sid;
}

/** A tools/list through the agent: the HTTP answer's content type and body text, exactly as sent. */
async function list(bearer: string, sid: string, id: string | number, env: "bytes" | "full"): Promise<string> {
  const before = { memo: process.env.MANDATE_LIST_MEMO, bytes: process.env.MANDATE_LIST_BYTES };
  if (env === "full") process.env.MANDATE_LIST_MEMO = "0";
  else delete process.env.MANDATE_LIST_MEMO;
  try {
    const r = await rpc(s.resourceUri, { jsonrpc: "2.0", id, method: "tools/list" }, { authorization: `Bearer ${bearer}`, "mcp-session-id": sid });
    return `${r.status} ${r.headers.get("content-type")} ${r.headers.get("content-length")}\n${r.text}`;
  } finally {
    if (before.memo === undefined) delete process.env.MANDATE_LIST_MEMO;
    else process.env.MANDATE_LIST_MEMO = before.memo;
  }
}

beforeAll(async () => {
  s = await startAgentStack();
  // The sandbox's own definitions (the approved ones), read raw.
  defs = await s.sandboxTools();
  expect(defs.length).toBeGreaterThanOrEqual(4);

  // The test's upstream: initialize, notifications, and tools/list answered with upstream.message, its id as the request's JSON text.
  up = createServer((req, res) => {
    let raw = "";
    req.on("data", (c: Buffer) => (raw += c.toString("utf8")));
    req.on("end", () => {
      if (req.method !== "POST") return void res.writeHead(405).end();
      const m = JSON.parse(raw) as { id?: unknown; method: string; params?: { protocolVersion?: string } };
      if (answerHandshake(res, m, "bytes-upstream", ["2026-07-28"])) return;
      if (m.id === undefined) return void res.writeHead(202).end();
      const text = upstream.message(JSON.stringify(m.id));
      if (!upstream.sse) return void res.writeHead(200, { "content-type": "application/json", ...upstream.headers }).end(text);
      // A text over several lines is sent as several data lines (the client joins them with newlines).
      res
        .writeHead(200, { "content-type": "text/event-stream", ...upstream.headers })
        .end((upstream.rawHead?.(JSON.stringify(m.id)) ?? "") + [...upstream.eventLines, ...text.split("\n").map((l) => `data: ${l}`)].join("\n") + "\n\n");
    });
  });
  await new Promise<void>((r) => up.listen(0, "127.0.0.1", () => r()));
  await s.useUpstream(`http://127.0.0.1:${(up.address() as AddressInfo).port}/mcp`, "bytes upstream");
}, 120_000);

afterAll(async () => {
  await s?.stop();
  await new Promise<void>((r) => (up ? up.close(() => r()) : r()));
});

/** Ids of every JSON-RPC shape: integers, fractions, exponents, strings with quotes, escapes and unicode. */
const ids = fc.oneof(
  fc.integer(),
  fc.integer({ min: -1e9, max: 1e9 }).map((n) => n / 8),
  fc.constantFrom(0, -1, 1e21, 1.5e-7, Number.MAX_SAFE_INTEGER, 2 ** 53 + 2),
  fc.string({ maxLength: 40 }),
  fc.string({ unit: "grapheme", maxLength: 20 }),
  fc.string({ unit: fc.constantFrom('"', "\\", "/", "\n", "\u2028", "\u0000", "é", "😀", "\ud800", "}", ",", '"id":', "a"), maxLength: 12 }),
);

describe("tools/list answered from a remembered serialized answer", () => {
  it("sends the bytes the full path sends, for random lists, layouts and ids (SSE and JSON answers)", async () => {
    const bearer = await s.token("tickets:read");
    const sid = await session(bearer);
    const reusedAtStart = listMemoStats.answersReused;
    let expectedReuses = 0;
    await fc.assert(
      fc.asyncProperty(
        fc.record({
          picks: fc.array(fc.nat(defs.length + 1), { maxLength: 8 }),
          sse: fc.boolean(),
          eventId: fc.boolean(),
          indent: fc.constantFrom(0, 1),
          extraResult: fc.constantFrom({}, { nextCursor: "c1" }, { ttlMs: 60_000 }, { ttlMs: 5, cacheScope: "public" }),
          // Where the id is: last (as the SDK writes it; answered from memory), last after an earlier "id" member
          // (JSON.parse keeps the last), first, or first (always the first request's) with a last member whose key
          // ends in `"id` (`a\"id`, the request's id): the text does not end with the id member, never answered from memory.
          layout: fc.constantFrom("last", "last", "earlier id", "first", "escaped key"),
          ids: fc.array(ids, { minLength: 3, maxLength: 3 }),
          nonce: fc.nat(),
        }),
        async (k) => {
          // The listed tools: approved ones, an unknown one, and (picked defs.length) none: only unique names,
          // so no drift is marked and every list of this case is remembered.
          const seen = new Set<number>();
          const tools = k.picks.filter((i) => i < defs.length && !seen.has(i) && seen.add(i)).map((i) => defs[i]!);
          if (k.picks.includes(defs.length + 1)) tools.push({ name: `unknown_${k.nonce}`, inputSchema: { type: "object" } });
          const result = JSON.stringify({ tools, ...k.extraResult, _meta: { n: k.nonce } }, null, k.indent || undefined);
          upstream.sse = k.sse;
          upstream.eventLines = k.eventId ? ["event: message", `id: ev-${k.nonce}`] : ["event: message"];
          upstream.message = (idJson) =>
            k.layout === "last"
              ? `{"result":${result},"jsonrpc":"2.0","id":${idJson}}`
              : k.layout === "earlier id"
                ? `{"id":"x","result":${result},"jsonrpc":"2.0","id":${idJson}}`
                : k.layout === "first"
                  ? `{"jsonrpc":"2.0","id":${idJson},"result":${result}}`
                  : `{"jsonrpc":"2.0","id":${JSON.stringify(k.ids[0])},"result":${result},"a\\"id":${idJson}}`;
          const remembered = k.layout === "last" || k.layout === "earlier id";
          // The first list of this text is filtered in full and its answer remembered; the next ones are answered from memory.
          const first = await list(bearer, sid, k.ids[0]!, "bytes");
          expect(first).toBe(await list(bearer, sid, k.ids[0]!, "full"));
          // The approved tools the token's scope maps to, in the upstream's order; nothing else.
          const kept = (messageOf(first.slice(first.indexOf("\n") + 1)).result as { tools: { name: string }[] }).tools.map((t) => t.name);
          expect(kept).toEqual(tools.map((t) => t.name as string).filter((n) => n === "list_tickets" || n === "get_ticket"));
          for (const id of k.ids.slice(1)) {
            const reused = listMemoStats.answersReused;
            const matched = listMemoStats.eventsMatched;
            const got = await list(bearer, sid, id, "bytes");
            expect(listMemoStats.answersReused).toBe(reused + (remembered ? 1 : 0));
            // On an SSE stream, a one-line text is found from the event's undecoded bytes (agent/proxy.ts pipeSse).
            expect(listMemoStats.eventsMatched).toBe(matched + (remembered && k.sse && !k.indent ? 1 : 0));
            if (remembered) expectedReuses++;
            expect(got).toBe(await list(bearer, sid, id, "full"));
            expect(messageOf(got.slice(got.indexOf("\n") + 1)).id).toEqual(k.layout === "escaped key" ? k.ids[0] : id);
          }
        },
      ),
      { numRuns: 40 },
    );
    expect(listMemoStats.answersReused - reusedAtStart).toBe(expectedReuses);
  }, 120_000);

  it("honours a bundle change and a revocation between two lists of one SDK client", async () => {
    upstream.sse = true;
    upstream.eventLines = ["event: message"];
    upstream.message = (idJson) => `{"result":${JSON.stringify({ tools: defs })},"jsonrpc":"2.0","id":${idJson}}`;
    const bearer = await s.token("tickets:read");
    const client = await s.connect(bearer);
    const live = async (change: (tx: typeof s.t.db) => Promise<unknown>, why: string) => {
      const rev = s.agent.sync.current!.content.manifest.revision;
      await s.t.db.transaction(async (tx) => {
        await change(tx);
        await republishLiveBundles(tx, s.owner.actor, s.kek, [s.serverId], why);
      });
      await s.waitRevision(rev + 1);
    };
    try {
      const names = async () => (await client.listTools()).tools.map((t) => t.name).sort();
      expect(await names()).toEqual(["get_ticket", "list_tickets"]);
      const reused = listMemoStats.answersReused;
      expect(await names()).toEqual(["get_ticket", "list_tickets"]);
      expect(listMemoStats.answersReused).toBe(reused + 1);

      // A new bundle: the tenant now requires approved clients; the same list lists nothing.
      await live((tx) => tx.update(tenants).set({ requireClientApproval: true }).where(eq(tenants.id, s.tenantA)), "tenant requires client approval");
      expect(await names()).toEqual([]);
      expect(await names()).toEqual([]);
      await live((tx) => tx.update(tenants).set({ requireClientApproval: false }).where(eq(tenants.id, s.tenantA)), "approval off");
      expect(await names()).toEqual(["get_ticket", "list_tickets"]);
      expect(await names()).toEqual(["get_ticket", "list_tickets"]);

      // A revocation of this user: the next list of the same client is refused, nothing listed.
      const atRevocation = listMemoStats.answersReused;
      await live(
        (tx) =>
          tx.insert(revocations).values({
            id: newId("revocation"),
            tenantId: s.tenantA,
            userId: qualifiedUser(s.issuer.issuer, "alice"),
            before: new Date(Date.now() + 2000),
            createdBy: s.owner.user.id,
          }),
        "revoke alice",
      );
      await expect(client.listTools()).rejects.toThrow();
      expect(listMemoStats.answersReused).toBe(atRevocation);
    } finally {
      await client.close().catch(() => {});
    }
  }, 60_000);

  it("an upstream cannot hide a list from the screen behind a lone CR (SSE ends lines at CR too): the SDK client reads only the screened one", async () => {
    upstream.sse = true;
    upstream.eventLines = ["event: message"];
    upstream.message = (idJson) => `{"result":${JSON.stringify({ tools: defs })},"jsonrpc":"2.0","id":${idJson}}`;
    // First an event the agent's parser took for a comment (no data line of its own), passed on as it was: the client's parser reads
    // a data line after the lone CR and a blank line after it, i.e. an unfiltered answer to this very request.
    upstream.rawHead = (idJson) => `: note\rdata: {"result":{"tools":[{"name":"smuggled_tool","inputSchema":{"type":"object"}}]},"jsonrpc":"2.0","id":${idJson}}\r\r\n\n`;
    // Another user than the one a test above revokes.
    const client = await s.connect(await s.token("tickets:read", { sub: "carol" }));
    try {
      expect((await client.listTools()).tools.map((t) => t.name).sort()).toEqual(["get_ticket", "list_tickets"]);
    } finally {
      upstream.rawHead = undefined;
      await client.close().catch(() => {});
    }
  }, 60_000);

  it("an upstream's Cache-Control never reaches the client: every answer is this caller's, no-store (a shared cache could serve a public one to another caller)", async () => {
    upstream.message = (idJson) => `{"result":${JSON.stringify({ tools: defs })},"jsonrpc":"2.0","id":${idJson}}`;
    upstream.headers = { "cache-control": "public, max-age=3600, s-maxage=3600" };
    const bearer = await s.token("tickets:read", { sub: "dave" });
    const sid = await session(bearer);
    try {
      for (const sse of [true, false]) {
        upstream.sse = sse;
        const r = await rpc(s.resourceUri, { jsonrpc: "2.0", id: 41, method: "tools/list" }, { authorization: `Bearer ${bearer}`, "mcp-session-id": sid });
        expect(r.status).toBe(200);
        expect(r.headers.get("cache-control"), `sse ${sse}`).toBe("no-store");
      }
    } finally {
      upstream.headers = {};
      upstream.sse = true;
    }
  });

  it("stateless era (2026-07-28): the same bytes as the full path, its cache hints included", async () => {
    // Another user than the one revoked above.
    const bearer = await s.token("tickets:read", { sub: "carol" });
    const meta = { "io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": {} };
    const stateless = async (id: string | number, env: "bytes" | "full") => {
      if (env === "full") process.env.MANDATE_LIST_MEMO = "0";
      try {
        const r = await rpc(
          s.resourceUri,
          { jsonrpc: "2.0", id, method: "tools/list", params: { _meta: meta } },
          { authorization: `Bearer ${bearer}`, "mcp-protocol-version": "2026-07-28", "mcp-method": "tools/list" },
        );
        return `${r.status} ${r.headers.get("content-type")} ${r.headers.get("content-length")}\n${r.text}`;
      } finally {
        delete process.env.MANDATE_LIST_MEMO;
      }
    };
    for (const [sse, extra] of [
      [true, {}],
      [false, { ttlMs: 5, cacheScope: "public" }],
      [true, { ttlMs: 1000 }],
    ] as const) {
      upstream.sse = sse;
      upstream.eventLines = ["event: message"];
      const result = JSON.stringify({ tools: defs, ...extra });
      upstream.message = (idJson) => `{"result":${result},"jsonrpc":"2.0","id":${idJson}}`;
      const first = await stateless("s-1", "bytes");
      expect(first).toBe(await stateless("s-1", "full"));
      const answer = messageOf(first.slice(first.indexOf("\n") + 1)).result as { tools: { name: string }[]; ttlMs: number; cacheScope: string };
      expect(answer.tools.map((t) => t.name).sort()).toEqual(["get_ticket", "list_tickets"]);
      expect(answer.cacheScope).toBe("private");
      for (const id of ['s"2\u2028', 3, -4.5]) {
        const reused = listMemoStats.answersReused;
        const got = await stateless(id, "bytes");
        expect(listMemoStats.answersReused).toBe(reused + 1);
        expect(got).toBe(await stateless(id, "full"));
      }
    }
  }, 60_000);

  it("never answers a text changed by one byte from memory", async () => {
    // Another user than the one revoked above.
    const bearer = await s.token("tickets:read", { sub: "bob" });
    const sid = await session(bearer);
    upstream.sse = true;
    upstream.eventLines = ["event: message"];
    const base = `{"result":${JSON.stringify({ tools: defs, _meta: { n: "one-byte" } })},"jsonrpc":"2.0","id":`;
    upstream.message = (idJson) => `${base}${idJson}}`;
    await list(bearer, sid, 1, "bytes");
    const reused = listMemoStats.answersReused;
    await list(bearer, sid, 2, "bytes");
    expect(listMemoStats.answersReused).toBe(reused + 1);
    await fc.assert(
      fc.asyncProperty(fc.nat(base.length - 1), fc.integer({ min: 32, max: 126 }), fc.integer({ min: 1000, max: 1e6 }), async (at, code, id) => {
        fc.pre(base.charCodeAt(at) !== code);
        const changed = base.slice(0, at) + String.fromCharCode(code) + base.slice(at + 1);
        upstream.message = (idJson) => `${changed}${idJson}}`;
        const before = listMemoStats.answersReused;
        const got = await list(bearer, sid, id, "bytes");
        expect(listMemoStats.answersReused).toBe(before);
        expect(got).toBe(await list(bearer, sid, id, "full"));
      }),
      { numRuns: 40 },
    );
    // The unchanged text again: a changed definition seen above marked its tool drifted (the drift set
    // grew), so what was remembered before is not used; the answer is still the full path's.
    upstream.message = (idJson) => `${base}${idJson}}`;
    expect(await list(bearer, sid, 3, "bytes")).toBe(await list(bearer, sid, 3, "full"));
  }, 120_000);
});

/**
 * agent/proxy.ts pipeSse on given chunks, without sockets: what it writes with the undecoded-bytes
 * comparison (the agent's path) and with the decoded text cut and screened as before
 * (`MANDATE_LIST_RAW=0`), for one remembered text. The fake screen answers a message's text from memory
 * exactly when its text, cut before the trailing id (`splitIdTail`), is the remembered one, as the list
 * memo does; any other message is "screened in full" (wrapped). So the two paths must write the same
 * bytes, and the byte comparison may answer only what the decoded text would.
 */
describe("pipeSse: remembered lists found from undecoded bytes", () => {
  // Multi-byte characters of every length (é 2, € 3, 😀 4 bytes), escapes, and the `"id":` text inside a string.
  const remembered = `{"result":{"tools":[{"name":"é€😀","description":"a \\"id\\": b, \\\\ \u2028 ü"},{"name":"t2","x":"\\"id\\":"}]},"jsonrpc":"2.0",`;
  const answerOf = (id: string) => ({ before: Buffer.from("ANSWER("), id, after: Buffer.from(")€") });
  function fakeScreen(durable: () => Promise<void> = () => Promise.resolve(), texts = [remembered]) {
    const hits: string[] = [];
    const fromMemory = (prefix: string, id: string | number, pending: Promise<void>[]) => {
      if (!texts.includes(prefix)) return null;
      hits.push(JSON.stringify(id));
      pending.push(durable());
      return answerOf(JSON.stringify(id));
    };
    return {
      hits,
      screen: Object.assign(async (m: unknown) => ({ screenedInFull: m }), {
        text: (text: string, pending: Promise<void>[]) => {
          const t = splitIdTail(text);
          return t ? fromMemory(t.prefix, t.id, pending) : null;
        },
        remembered: () => texts.map((text) => ({ text, bytes: Buffer.from(text) })),
        tail: (t: { prefix: string; id: string | number }, pending: Promise<void>[]) => fromMemory(t.prefix, t.id, pending),
      }) as Screen,
    };
  }
  /** What pipeSse writes for these chunks: the bytes, the ids answered from memory, the events matched by bytes. */
  async function run(chunks: Buffer[], raw: boolean, durable?: () => Promise<void>) {
    const out: Buffer[] = [];
    const res = { destroyed: false, cork() {}, uncork() {}, write: (b: string | Buffer) => void out.push(Buffer.from(b)) } as unknown as ServerResponse;
    const { hits, screen } = fakeScreen(durable);
    const matched = listMemoStats.eventsMatched;
    const before = process.env.MANDATE_LIST_RAW;
    if (!raw) process.env.MANDATE_LIST_RAW = "0";
    try {
      await pipeSse(
        (async function* () {
          for (const c of chunks) yield c;
        })(),
        startedSink(res),
        screen,
      );
    } finally {
      if (before === undefined) delete process.env.MANDATE_LIST_RAW;
      else process.env.MANDATE_LIST_RAW = before;
    }
    return { bytes: Buffer.concat(out).toString("latin1"), hits, matched: listMemoStats.eventsMatched - matched };
  }
  const cutAt = (b: Buffer, at: number[]) => [0, ...at, b.length].slice(1).map((end, i, ends) => b.subarray(i ? ends[i - 1] : 0, end));
  const listEvent = (id: string, head = "event: message\n", data = "data: ") => `${head}${data}${remembered}"id":${id}}`;

  it("answers the remembered list, byte for byte as the decoded path, with the event cut at every byte", async () => {
    // A byte order mark first (dropped, as the decoder drops it), a comment event, two list events (LF and CRLF, `data:` with and without a space), a notification.
    const stream = Buffer.from(
      "\ufeff" +
        `: comment\n\n${listEvent('"a\\u00e9😀"')}\n\n${listEvent("7", "event: message\r\nid: ev-1\r\n", "data:")}\r\n\r\nevent: message\ndata: {"jsonrpc":"2.0","method":"notifications/x"}\n\n`,
    );
    const whole = await run([stream], false);
    expect(whole.hits).toEqual(['"aé😀"', "7"]);
    for (let at = 1; at < stream.length; at++) {
      const got = await run(cutAt(stream, [at]), true);
      expect(got.bytes).toBe(whole.bytes);
      expect(got.hits).toEqual(whole.hits);
      // Both list events found from their bytes (not by decoding them).
      expect(got.matched).toBe(2);
    }
  });

  it("matches the decoded path on random chunkings, layouts and one-byte changes", async () => {
    const bytesOfRemembered = Buffer.from(remembered);
    await fc.assert(
      fc.asyncProperty(
        fc.record({
          head: fc.constantFrom("", "event: message\n", "event: message\nid: 3\n", "event: message\r\n", ": c\n"),
          data: fc.constantFrom("data: ", "data:", "data:  "),
          id: fc.oneof(
            fc.integer().map(String),
            fc.string({ maxLength: 6 }).map((s) => JSON.stringify(s)),
            fc.constantFrom('"\\ud800"', "1e3", '"x"  ', "1 ", '"\u2028"', "5\n", "5\r\n", '"a"\r', "5\r", '1,"id":2', '"a","b":1'),
          ),
          end: fc.constantFrom("\n\n", "\r\n\r\n", "\n\r\n", "\r\n\n", "\r\r\n\n"),
          // A one-byte change: where (in the whole event) and to what; or none.
          change: fc.option(fc.record({ at: fc.nat(), to: fc.integer({ min: 0, max: 255 }) })),
          after: fc.constantFrom("", "data: x\n\n", 'event: message\ndata: {"jsonrpc":"2.0","id":1,"result":{}}\n\n', "data: \n"),
          cuts: fc.array(fc.nat(), { maxLength: 5 }),
        }),
        async (k) => {
          const event = Buffer.from(listEvent(k.id, k.head, k.data) + k.end + k.after);
          if (k.change) event[k.change.at % event.length] = k.change.to;
          const chunks = cutAt(
            event,
            [...new Set(k.cuts.map((c) => c % event.length))].filter((c) => c > 0).sort((a, b) => a - b),
          );
          const decoded = await run([event], false);
          const got = await run(chunks, true);
          expect(got.bytes).toBe(decoded.bytes);
          expect(got.hits).toEqual(decoded.hits);
          // A change inside the remembered text's bytes is never answered from its bytes.
          const head = Buffer.byteLength(k.head + k.data);
          if (
            k.change &&
            k.change.at % event.length >= head &&
            k.change.at % event.length < head + bytesOfRemembered.length &&
            event.compare(bytesOfRemembered, 0, bytesOfRemembered.length, head, head + bytesOfRemembered.length) !== 0
          )
            expect(got.matched).toBe(0);
        },
      ),
      { numRuns: 400 },
    );
  });

  it("never matches a one-byte change at any position of the remembered bytes, cut at that position", async () => {
    const clean = Buffer.from(listEvent("5") + "\n\n");
    const head = Buffer.byteLength("event: message\ndata: ");
    for (let at = head; at < head + Buffer.byteLength(remembered); at++) {
      const event = Buffer.from(clean);
      event[at] = event[at]! ^ 0x01;
      for (const cuts of [[at], [at + 1], [at - 1, at + 1]]) {
        const got = await run(cutAt(event, cuts), true);
        expect(got.matched).toBe(0);
        expect(got.bytes).toBe((await run([event], false)).bytes);
      }
    }
  });

  it("ends the stream at an event over MAX_UPSTREAM_MESSAGE_BYTES bytes, counted in bytes", async () => {
    // 3-byte characters: fewer UTF-16 units than bytes, so only a byte count ends this stream (else the
    // long event would end, be dropped as not JSON, and the next list be answered).
    const mib = Buffer.from("€".repeat(Math.ceil(MAX_UPSTREAM_MESSAGE_BYTES / 3 / 16)));
    const chunks = [Buffer.from(listEvent("1") + "\n\n"), Buffer.from("data: "), ...Array.from({ length: 17 }, () => mib), Buffer.from("\n\n" + listEvent("2") + "\n\n")];
    const got = await run(chunks, true);
    expect(got.hits).toEqual(["1"]);
    expect(got.bytes).toBe(`event: message\ndata: ANSWER(1)${Buffer.from("€").toString("latin1")}\n\n`);
  });

  it("writes nothing of a remembered answer before its decision line is durable", async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const out: Buffer[] = [];
    const res = { destroyed: false, cork() {}, uncork() {}, write: (b: string | Buffer) => void out.push(Buffer.from(b)) } as unknown as ServerResponse;
    const { screen, hits } = fakeScreen(() => gate);
    const done = pipeSse(
      (async function* () {
        yield Buffer.from(listEvent("9") + "\n\n");
      })(),
      startedSink(res),
      screen,
    );
    for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
    expect(hits).toEqual(["9"]);
    expect(out.length).toBe(0);
    release();
    await done;
    expect(Buffer.concat(out).toString()).toBe(`event: message\ndata: ANSWER(9)€\n\n`);
  });
});
