// `node --import ./bench/no-server-only.mjs --import tsx bench/<script>.ts`: Next.js' "server-only" marker throws
// outside React Server Components; for bench scripts it resolves to an empty module (as the vitest alias does).
import { register } from "node:module";

register(`data:text/javascript,${encodeURIComponent(`export async function resolve(s, c, n) { return s === "server-only" ? { url: "data:text/javascript,", shortCircuit: true } : n(s, c); }`)}`);
