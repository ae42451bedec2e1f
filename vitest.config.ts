import path from "node:path";
import { defineConfig } from "vitest/config";

const root = path.dirname(new URL(import.meta.url).pathname);

export default defineConfig({
  resolve: {
    alias: [
      // Next.js' marker package throws outside React Server Components; tests import server code directly.
      { find: /^server-only$/, replacement: path.join(root, "test/server-only.ts") },
      { find: /^@\//, replacement: `${root}/` },
    ],
  },
  test: {
    environment: "node",
    include: ["test/**/*.test.ts", "lib/**/*.test.ts"],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    maxWorkers: 2,
    // Tests reach their peers (sandbox upstream, authorization server) on loopback; the egress guard refuses it without this.
    env: { MANDATE_EGRESS_ALLOW: "loopback" },
    // One known driver defect, and only it: postgres.js 3.4.9 writes from a setImmediate after the server closed the
    // socket and throws a TypeError no caller can catch (porsager/postgres#1154, #1208; fix #1209 unreleased).
    // test/decisions-restart.test.ts restarts PostgreSQL on purpose and provokes it; that test still asserts that
    // every acknowledged decision is stored exactly once. The control plane's own exposure is tracked in docs/operations.md.
    onUnhandledError(error) {
      const text = `${error.message ?? ""}\n${error.stack ?? ""}\n${JSON.stringify(error)}`;
      const knownDriverDefect = text.includes("TypeError") && text.includes("reading 'write'") && text.includes("nextWrite") && text.includes("postgres/src/connection.js");
      return knownDriverDefect ? false : undefined;
    },
  },
});
