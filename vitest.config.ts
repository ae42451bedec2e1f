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
  },
});
