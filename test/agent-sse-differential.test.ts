/**
 * The agent screens an upstream's SSE stream with its own event parser and writes what it screened; the
 * client reads the result with a parser of the SSE specification (the MCP SDK's eventsource-parser). A
 * line ending the agent does not treat as one, but the client does (a lone CR is a line end in SSE), would
 * let an upstream hide a message inside a line the agent took for a comment or a field it passes on: the
 * client would read a message nobody screened. These tests run agent/proxy.ts pipeSse on hostile streams
 * (both of its event paths) and parse what it writes with eventsource-parser: every message the client
 * reads must be one the screen saw.
 */
import type { ServerResponse } from "node:http";
import { createParser } from "eventsource-parser";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { pipeSse, startedSink, type Screen } from "@/agent/proxy";

const SMUGGLED = '{"jsonrpc":"2.0","id":9,"result":{"tools":[{"name":"hidden_admin_tool"}]}}';
const LEGIT = '{"jsonrpc":"2.0","method":"notifications/message","params":{"level":"info","data":"ok"}}';

/** A screen that passes every message, marked, so the output tells a screened message from an unscreened one. */
function markingScreen(): { screen: Screen; seen: unknown[] } {
  const seen: unknown[] = [];
  const screen = Object.assign(async (m: unknown) => {
    seen.push(m);
    return { screened: m };
  }, {}) as Screen;
  return { screen, seen };
}

/** What pipeSse writes for these chunks, as the data of the events a spec parser reads from it. */
async function clientReads(chunks: string[], raw: boolean): Promise<string[]> {
  const out: Buffer[] = [];
  const res = { destroyed: false, cork() {}, uncork() {}, write: (b: string | Buffer) => void out.push(Buffer.from(b)) } as unknown as ServerResponse;
  const { screen } = markingScreen();
  const before = process.env.MANDATE_LIST_RAW;
  if (!raw) process.env.MANDATE_LIST_RAW = "0";
  try {
    await pipeSse(
      (async function* () {
        for (const c of chunks) yield Buffer.from(c);
      })(),
      startedSink(res),
      screen,
    );
  } finally {
    if (before === undefined) delete process.env.MANDATE_LIST_RAW;
    else process.env.MANDATE_LIST_RAW = before;
  }
  const events: string[] = [];
  const parser = createParser({ onEvent: (e) => events.push(e.data) });
  parser.feed(Buffer.concat(out).toString("utf8"));
  parser.feed("\n\n");
  return events;
}

/** Whether the client would read a message the screen never saw: any event data that parses as JSON-RPC without the screen's mark. */
function unscreened(events: string[]): string[] {
  return events.filter((d) => {
    try {
      const m = JSON.parse(d) as Record<string, unknown>;
      return !("screened" in m);
    } catch {
      return false;
    }
  });
}

const hostile: [string, string][] = [
  ["a lone CR before a data line, in an event without one", `event: message\rdata: ${SMUGGLED}\n\n`],
  ["a lone CR in a comment line", `: note\rdata: ${SMUGGLED}\n\n`],
  ["a lone CR in an id line, before a screened data line", `id: 1\rdata: ${SMUGGLED}\r\rdata: ${LEGIT}\n\n`],
  ["CR CR as an event boundary after a comment", `: x\r\rdata: ${SMUGGLED}\n\n`],
  ["a lone CR at the very end of a head line", `event: message\r\rdata: ${SMUGGLED}\n\ndata: ${LEGIT}\n\n`],
  ["a lone CR inside the data line", `data: ${LEGIT}\rdata: ${SMUGGLED}\n\n`],
];

describe("pipeSse and a spec SSE parser read the same events (no message reaches the client unscreened)", () => {
  for (const raw of [true, false]) {
    for (const [what, stream] of hostile) {
      it(`${raw ? "byte path" : "decoded path"}: ${what}`, async () => {
        const whole = await clientReads([stream], raw);
        expect(unscreened(whole), JSON.stringify(whole)).toEqual([]);
        // Cut at every byte: the cut never changes what the client reads.
        for (let at = 1; at < stream.length; at++) {
          const cut = await clientReads([stream.slice(0, at), stream.slice(at)], raw);
          expect(unscreened(cut), `cut at ${at}: ${JSON.stringify(cut)}`).toEqual([]);
        }
      });
    }
  }

  it("a well-formed stream still reaches the client screened, with LF, CRLF and mixed line ends", async () => {
    for (const raw of [true, false]) {
      const events = await clientReads([`event: message\ndata: ${LEGIT}\n\n`, `id: 2\r\nevent: message\r\ndata: ${LEGIT}\r\n\r\n`, `: c\n\ndata: ${LEGIT}\n\r\n`], raw);
      expect(events.map((d) => JSON.parse(d) as unknown)).toEqual([{ screened: JSON.parse(LEGIT) }, { screened: JSON.parse(LEGIT) }, { screened: JSON.parse(LEGIT) }]);
    }
  });

  it("a message the screen passes unchanged is written as the agent read it: a key the upstream sent twice reaches the client once, with the value screened", async () => {
    const dup = '{"jsonrpc":"2.0","method":"notifications/resources/updated","params":{"uri":"secret://payroll"},"params":{"uri":"docs://readme"}}';
    for (const raw of [true, false]) {
      const out: Buffer[] = [];
      const res = { destroyed: false, cork() {}, uncork() {}, write: (b: string | Buffer) => void out.push(Buffer.from(b)) } as unknown as ServerResponse;
      const seen: unknown[] = [];
      // The screen lets the message through as it is (a notification about a resource the caller may read).
      const identity = Object.assign(async (m: unknown) => (seen.push(m), m), {}) as Screen;
      const before = process.env.MANDATE_LIST_RAW;
      if (!raw) process.env.MANDATE_LIST_RAW = "0";
      try {
        await pipeSse(
          (async function* () {
            yield Buffer.from(`event: message\ndata: ${dup}\n\n`);
          })(),
          startedSink(res),
          identity,
        );
      } finally {
        if (before === undefined) delete process.env.MANDATE_LIST_RAW;
        else process.env.MANDATE_LIST_RAW = before;
      }
      expect(seen).toEqual([{ jsonrpc: "2.0", method: "notifications/resources/updated", params: { uri: "docs://readme" } }]);
      const written = Buffer.concat(out).toString("utf8");
      expect(written).not.toContain("secret://payroll");
      expect(written).toBe(`event: message\ndata: ${JSON.stringify(seen[0])}\n\n`);
    }
  });

  it("random streams of hostile lines: nothing the client reads is unscreened", async () => {
    const line = fc.oneof(fc.constantFrom(`data: ${SMUGGLED}`, `data:${LEGIT}`, "event: message", "id: 7", ": comment", "retry: 10", "data", "", "x: y"), fc.string({ maxLength: 8 }));
    const end = fc.constantFrom("\n", "\r\n", "\r");
    await fc.assert(
      fc.asyncProperty(fc.array(fc.tuple(line, end), { maxLength: 12 }), fc.boolean(), fc.nat(), async (lines, raw, cutAt) => {
        const stream = lines.map(([l, e]) => l + e).join("") + "\n\n";
        const at = stream.length > 1 ? 1 + (cutAt % (stream.length - 1)) : 1;
        const events = await clientReads([stream.slice(0, at), stream.slice(at)], raw);
        expect(unscreened(events), JSON.stringify({ stream, events })).toEqual([]);
      }),
      { numRuns: 400 },
    );
  });
});
