/**
 * sandbox/upstream-v2.ts against real clients: the official SDK v2 client in
 * the 2026-07-28 stateless era (server/discover, then each request on its own
 * with its `_meta` envelope and Mcp-Method / Mcp-Name headers) and the v1 client
 * (@modelcontextprotocol/sdk 1.32) in the handshake era, on the same /mcp.
 */
import { Client as ClientV2, StreamableHTTPClientTransport as TransportV2 } from "@modelcontextprotocol/client";
import { Client as ClientV1 } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport as TransportV1 } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startUpstreamV2, type UpstreamV2 } from "@/sandbox/upstream-v2";

let up: UpstreamV2;
beforeAll(async () => {
  up = await startUpstreamV2();
});
afterAll(async () => {
  await up?.stop();
});

const texts = (content: unknown) => (content as { type: string; text?: string }[]).filter((c) => c.type === "text").map((c) => c.text);

describe("sandbox upstream on the SDK v2", () => {
  it("serves the official v2 client in the stateless era (2026-07-28)", async () => {
    const client = new ClientV2({ name: "sandbox-v2-test", version: "1.0.0" }, { versionNegotiation: { mode: { pin: "2026-07-28" } } });
    await client.connect(new TransportV2(new URL(up.url)));
    try {
      expect(client.getProtocolEra()).toBe("modern");
      expect(client.getNegotiatedProtocolVersion()).toBe("2026-07-28");

      const discovered = await client.discover();
      expect(discovered.supportedVersions).toContain("2026-07-28");
      expect(client.getServerVersion()?.name).toBe("mcp-conformance-test-server");

      const from = up.requests.length;
      const { tools } = await client.listTools();
      expect(tools.map((t) => t.name)).toEqual(expect.arrayContaining(["test_simple_text", "test_error_handling", "test_x_mcp_header"]));
      const called = await client.callTool({ name: "test_simple_text", arguments: {} });
      expect(texts(called.content)).toEqual(["This is a simple text response for testing."]);
      const read = await client.readResource({ uri: "test://static-text" });
      expect(read.contents[0]).toMatchObject({ uri: "test://static-text", text: "This is the content of the static text resource." });
      const templated = await client.readResource({ uri: "test://template/42/data" });
      expect(JSON.parse((templated.contents[0] as { text: string }).text)).toMatchObject({ id: "42", templateTest: true });
      const prompt = await client.getPrompt({ name: "test_prompt_with_arguments", arguments: { arg1: "a", arg2: "b" } });
      expect(prompt.messages[0]!.content).toMatchObject({ type: "text", text: "Prompt with arguments: arg1='a', arg2='b'" });
      const completion = await client.complete({ ref: { type: "ref/prompt", name: "test_prompt_with_arguments" }, argument: { name: "arg1", value: "" } });
      expect(completion.completion.values).toEqual([]);

      // Stateless: no session, every request carries its method (and name) in headers.
      const seen = up.requests.slice(from).filter((r) => r.httpMethod === "POST");
      expect(seen.length).toBeGreaterThanOrEqual(6);
      expect(seen.every((r) => r.era === "modern" && r.protocolVersion === "2026-07-28")).toBe(true);
      expect(seen.map((r) => [r.mcpMethod, r.mcpName])).toEqual(
        expect.arrayContaining([
          ["tools/list", null],
          ["tools/call", "test_simple_text"],
          ["resources/read", "test://static-text"],
          ["prompts/get", "test_prompt_with_arguments"],
        ]),
      );
    } finally {
      await client.close();
    }
  });

  it("answers a body that disagrees with its Mcp-Name header with HTTP 400 HeaderMismatch", async () => {
    const res = await fetch(up.url, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        accept: "application/json, text/event-stream",
        "mcp-protocol-version": "2026-07-28",
        "mcp-method": "tools/call",
        "mcp-name": "test_simple_text",
      },
      body: JSON.stringify({
        jsonrpc: "2.0",
        id: 1,
        method: "tools/call",
        params: {
          name: "test_error_handling",
          arguments: {},
          _meta: { "io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": {}, "io.modelcontextprotocol/clientInfo": { name: "t", version: "1" } },
        },
      }),
    });
    expect(res.status).toBe(400);
    expect(((await res.json()) as { error: { code: number } }).error.code).toBe(-32020);
  });

  it("serves the v1 client in the handshake era (initialize, session)", async () => {
    const client = new ClientV1({ name: "sandbox-v1-test", version: "1.0.0" });
    const transport = new TransportV1(new URL(up.url));
    await client.connect(transport);
    try {
      expect(transport.sessionId).toMatch(/^[0-9a-f-]{36}$/);
      expect(client.getServerVersion()?.name).toBe("mcp-conformance-test-server");
      const { tools } = await client.listTools();
      expect(tools.length).toBeGreaterThan(10);
      const called = await client.callTool({ name: "test_simple_text", arguments: {} });
      expect(texts(called.content)).toEqual(["This is a simple text response for testing."]);
      const read = await client.readResource({ uri: "test://static-binary" });
      expect(read.contents[0]).toMatchObject({ uri: "test://static-binary", mimeType: "image/png" });
      const prompt = await client.getPrompt({ name: "test_simple_prompt" });
      expect(prompt.messages).toHaveLength(1);
      expect(up.requests.some((r) => r.era === "legacy" && r.httpMethod === "POST")).toBe(true);
    } finally {
      await transport.terminateSession().catch(() => {});
      await client.close();
    }
  });

  it("refuses a Host that is not loopback (DNS rebinding)", async () => {
    const { request } = await import("node:http");
    const u = new URL(up.url);
    const status = await new Promise<number>((resolve, reject) => {
      const req = request({ host: u.hostname, port: u.port, path: u.pathname, method: "POST", headers: { host: "evil.example", "content-type": "application/json" } }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on("error", reject);
      req.end(JSON.stringify({ jsonrpc: "2.0", id: 1, method: "ping" }));
    });
    expect(status).toBe(403);
  });
});
