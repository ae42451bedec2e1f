/**
 * The agent's request path without per-call parsing it can remember (issue
 * 12's eighth round, agent/server.ts): the body read with listeners gives
 * the bytes the async iterator gave, stops at the bound, and fails on a
 * request cut short; the remembered request target parse equals WHATWG URL's;
 * the one-pass repeated-header check equals one pass per header.
 */
import { connect } from "node:net";
import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import fc from "fast-check";
import { afterEach, describe, expect, it } from "vitest";
import { MAX_BODY_BYTES } from "@/agent/bounds";
import { readBody, repeatedSingles, requestTarget } from "@/agent/server";

let server: Server | null = null;
afterEach(() => new Promise<void>((r) => (server ? server.close(() => r()) : r())));

/** A server that reads each body with readBody and reports what it got. */
async function reader(): Promise<{ port: number; results: Promise<Buffer | "too_large" | Error>[] }> {
  const results: Promise<Buffer | "too_large" | Error>[] = [];
  server = createServer((req, res) => {
    const p = readBody(req).catch((e: unknown) => e as Error);
    results.push(p);
    void p.then((r) => {
      if (r === "too_large") res.setHeader("connection", "close");
      res.writeHead(r === "too_large" ? 413 : r instanceof Error ? 500 : 200).end(r instanceof Buffer ? String(r.length) : "");
    });
  });
  await new Promise<void>((r) => server!.listen(0, "127.0.0.1", r));
  return { port: (server!.address() as AddressInfo).port, results };
}

/** Sends raw bytes (in pieces, with pauses) and returns what came back. */
function send(port: number, pieces: (string | Buffer)[], end = true): Promise<string> {
  return new Promise((resolve) => {
    const sock = connect(port, "127.0.0.1");
    let got = "";
    sock.on("data", (d) => (got += d.toString("latin1")));
    sock.on("error", () => resolve(got));
    sock.on("close", () => resolve(got));
    void (async () => {
      for (const p of pieces) {
        if (sock.destroyed) return;
        sock.write(p);
        await new Promise((r) => setTimeout(r, 5));
      }
      if (end) sock.end();
      else sock.destroy();
    })();
  });
}

describe("readBody (listeners)", () => {
  it("returns the whole body sent in pieces (chunked and with Content-Length), and an empty one", async () => {
    const { port, results } = await reader();
    const body = JSON.stringify({ jsonrpc: "2.0", id: 1, method: "tools/call", params: { name: "x", arguments: { s: "é".repeat(3000) } } });
    const bytes = Buffer.from(body);
    const cl = await send(port, [
      `POST /mcp HTTP/1.1\r\nhost: x\r\ncontent-length: ${bytes.length}\r\nconnection: close\r\n\r\n`,
      bytes.subarray(0, 10),
      bytes.subarray(10, 5000),
      bytes.subarray(5000),
    ]);
    expect(cl).toMatch(/^HTTP\/1\.1 200/);
    expect((await results[0]!) as Buffer).toEqual(bytes);
    const chunked = await send(port, [
      "POST /mcp HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n",
      `${(3000).toString(16)}\r\n`,
      bytes.subarray(0, 3000),
      `\r\n${(bytes.length - 3000).toString(16)}\r\n`,
      bytes.subarray(3000),
      "\r\n0\r\n\r\n",
    ]);
    expect(chunked).toMatch(/^HTTP\/1\.1 200/);
    expect((await results[1]!) as Buffer).toEqual(bytes);
    await send(port, ["POST /mcp HTTP/1.1\r\nhost: x\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"]);
    expect(((await results[2]!) as Buffer).length).toBe(0);
  });

  it("a body parsed whole before it is read (it came with its headers) is taken with one read: the same bytes", async () => {
    const results: Promise<Buffer | "too_large" | Error>[] = [];
    const complete: boolean[] = [];
    server = createServer((req, res) => {
      // Read a little later, as the agent does after its token check: by then the parser has the whole message.
      setImmediate(() => {
        complete.push(req.complete);
        const p = readBody(req).catch((e: unknown) => e as Error);
        results.push(p);
        void p.then((r) => res.writeHead(200).end(r instanceof Buffer ? String(r.length) : String(r)));
      });
    });
    await new Promise<void>((r) => server!.listen(0, "127.0.0.1", r));
    const port = (server!.address() as AddressInfo).port;
    const bytes = Buffer.from(JSON.stringify({ jsonrpc: "2.0", id: 1, method: "tools/call", params: { name: "x", arguments: { s: "é😀".repeat(500) } } }));
    const one = await send(port, [Buffer.concat([Buffer.from(`POST /mcp HTTP/1.1\r\nhost: x\r\ncontent-length: ${bytes.length}\r\nconnection: close\r\n\r\n`), bytes])]);
    expect(one).toMatch(/^HTTP\/1\.1 200/);
    expect((await results[0]!) as Buffer).toEqual(bytes);
    const chunked = await send(port, [
      `POST /mcp HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n${(10).toString(16)}\r\n${bytes.subarray(0, 10).toString("latin1")}\r\n0\r\n\r\n`,
    ]);
    expect(chunked).toMatch(/^HTTP\/1\.1 200/);
    expect(((await results[1]!) as Buffer).toString("latin1")).toBe(bytes.subarray(0, 10).toString("latin1"));
    await send(port, ["POST /mcp HTTP/1.1\r\nhost: x\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"]);
    expect(((await results[2]!) as Buffer).length).toBe(0);
    expect(complete).toEqual([true, true, true]);
  });

  it("answers too_large past MAX_BODY_BYTES: declared (nothing read, the 413 reaches the client) or streamed (stops reading)", async () => {
    const { port, results } = await reader();
    const declared = await send(port, [`POST /mcp HTTP/1.1\r\nhost: x\r\ncontent-length: ${MAX_BODY_BYTES + 1}\r\n\r\n`, "{}"]);
    expect(declared).toMatch(/^HTTP\/1\.1 413/);
    expect(await results[0]!).toBe("too_large");
    const big = Buffer.alloc(1024 * 1024, 0x20);
    const pieces: (string | Buffer)[] = ["POST /mcp HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n"];
    for (let i = 0; i < 5; i++) pieces.push(`${big.length.toString(16)}\r\n`, big, "\r\n");
    // The client may see a reset instead of the 413 (the server closes while it is still writing): the answer is
    // what readBody gave, before the whole body was sent.
    const sent = send(port, pieces);
    await expect.poll(() => results.length).toBe(2);
    expect(await results[1]!).toBe("too_large");
    await sent;
  });

  it("fails (never resolves a partial body) when the client goes away before the end", async () => {
    const { port, results } = await reader();
    await send(port, ["POST /mcp HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\n\r\n", '{"jsonrpc":'], false);
    await expect.poll(() => results.length).toBe(1);
    expect(await results[0]!).toBeInstanceOf(Error);
  });
});

describe("requestTarget", () => {
  it("equals WHATWG URL's path and access_token query, from the memo or not", () => {
    const part = fc.constantFrom("mcp", "%2e%2e", "..", ".", "a b", "%41", "é", "x?access_token=1", "?", "#f", "\\", "//", "access_token", "&access_token", "=", ";");
    fc.assert(
      fc.property(fc.array(part, { maxLength: 6 }), (parts) => {
        const raw = `/${parts.join("")}`;
        const outcome = (f: () => unknown) => {
          try {
            return f();
          } catch (e) {
            return `throws ${(e as { code?: string }).code}`;
          }
        };
        const want = outcome(() => {
          const u = new URL(raw, "http://agent");
          return { pathname: u.pathname, accessToken: u.searchParams.has("access_token") };
        });
        // Twice: the second from the memo (a target URL refuses is never remembered: it throws again).
        for (let i = 0; i < 2; i++) expect(outcome(() => requestTarget(raw))).toEqual(want);
      }),
      { numRuns: 500 },
    );
  });
});

describe("repeatedSingles", () => {
  it("finds exactly the checked headers sent more than once, whatever their case", () => {
    const names = [
      "host",
      "Host",
      "AUTHORIZATION",
      "authorization",
      "mcp-session-id",
      "Mcp-Session-Id",
      "accept",
      "content-type",
      "last-event-id",
      "mcp-protocol-version",
      "x-other",
      "X-Other",
      "cookie",
    ];
    fc.assert(
      fc.property(fc.array(fc.constantFrom(...names), { maxLength: 12 }), (sent) => {
        const rawHeaders = sent.flatMap((n) => [n, "v"]);
        const once = (name: string) => rawHeaders.filter((h, i) => i % 2 === 0 && h.toLowerCase() === name).length > 1;
        const got = repeatedSingles({ rawHeaders } as Pick<IncomingMessage, "rawHeaders">);
        for (const n of ["host", "authorization", "mcp-session-id", "mcp-protocol-version", "last-event-id", "content-type", "accept"]) expect(got.has(n), n).toBe(once(n));
      }),
    );
  });
});
