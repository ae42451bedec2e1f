import { createHash } from "node:crypto";
import canonicalize from "canonicalize";
import type { BundleMaskingRule } from "./bundle";

/** What a hidden value becomes. */
export const MASKED = "[masked]";

/** Limits on a masking path (the admin API enforces them; the agent only applies). */
export const MASK_PATH_MAX = 200;

/**
 * Why a masking path is invalid, or null when it is valid. A path is
 * dot-separated keys; `*` matches every key of an object or item of an array.
 */
export function maskPathError(path: string): string | null {
  if (typeof path !== "string" || path.length === 0) return "a path cannot be empty";
  if (path.length > MASK_PATH_MAX) return `a path is at most ${MASK_PATH_MAX} characters`;
  if (/\s/.test(path)) return `"${path}": paths cannot contain spaces`;
  const segments = path.split(".");
  if (segments.some((s) => s.length === 0)) return `"${path}": empty segment (leading, trailing or doubled dot)`;
  if (segments.some((s) => s !== "*" && s.includes("*"))) return `"${path}": "*" must be a whole segment (e.g. items.*.ssn)`;
  return null;
}

/** The hash a "hash" rule writes: keyed by server, tool and concrete path so equal values hash equally only at the same place. */
export function maskHash(serverId: string, tool: string, path: string, value: unknown): string {
  const canonical = canonicalize(value === undefined ? null : value) ?? "null";
  const hex = createHash("sha256").update(`${serverId}/${tool}/${path}\u0000${canonical}`).digest("hex");
  return `sha256:${hex.slice(0, 32)}`;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** A JSON deep copy (arguments come from JSON, so nothing is lost). */
function copy(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(copy);
  if (isRecord(v)) {
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) out[k] = copy(x);
    return out;
  }
  return v;
}

/** Concrete paths (as segment lists) that a pattern matches in a value. */
function expand(value: unknown, pattern: string[], at: string[], out: string[][]): void {
  if (pattern.length === 0) {
    out.push(at);
    return;
  }
  const seg = pattern[0]!;
  const rest = pattern.slice(1);
  if (Array.isArray(value)) {
    if (seg === "*") value.forEach((item, i) => expand(item, rest, [...at, String(i)], out));
    else if (/^(0|[1-9]\d*)$/.test(seg) && Number(seg) < value.length) expand(value[Number(seg)], rest, [...at, seg], out);
  } else if (isRecord(value)) {
    if (seg === "*") for (const k of Object.keys(value)) expand(value[k], rest, [...at, k], out);
    else if (Object.hasOwn(value, seg)) expand(value[seg], rest, [...at, seg], out);
  }
}

/** One path segment in a form no other segment sequence shares. */
const segmentId = (s: string) => `${JSON.stringify(s)}/`;
const pathId = (path: string[]) => path.map(segmentId).join("");

function getAt(root: unknown, path: string[]): unknown {
  let v = root;
  for (const s of path) v = Array.isArray(v) ? v[Number(s)] : (v as Record<string, unknown>)[s];
  return v;
}

function setAt(root: unknown, path: string[], value: unknown): void {
  let v = root;
  for (const s of path.slice(0, -1)) v = Array.isArray(v) ? v[Number(s)] : (v as Record<string, unknown>)[s];
  const last = path[path.length - 1]!;
  if (Array.isArray(v)) v[Number(last)] = value;
  else (v as Record<string, unknown>)[last] = value;
}

/** The rules of a bundle that apply to one call. */
export function rulesFor(rules: BundleMaskingRule[] | null | undefined, serverId: string, tool: string): BundleMaskingRule[] {
  return (rules ?? []).filter((r) => r.serverId === serverId && (r.tool === "*" || r.tool === tool));
}

/**
 * Masks a call's arguments with the bundle's rules for (server, tool).
 * Returns a deep copy (the input is never mutated) and the concrete paths
 * masked ("items.0.ssn"). "hide" writes "[masked]"; "hash" writes
 * "sha256:" + 32 hex of SHA-256 over `${serverId}/${tool}/${path}\0${canonical JSON}`.
 * Hide wins over hash on the same path; once a path is masked, rules on
 * paths below it are moot (the value is gone). Arguments that are not an
 * object (invalid for MCP) are dropped entirely when any rule applies.
 */
export function maskArgs(args: Record<string, unknown> | null | undefined, rules: BundleMaskingRule[], serverId: string, tool: string): { args: Record<string, unknown> | null; masked: string[] } {
  if (args === null || args === undefined) return { args: null, masked: [] };
  const applicable = rulesFor(rules, serverId, tool);
  if (!isRecord(args)) {
    if (applicable.length > 0) return { args: null, masked: ["*"] };
    return { args: copy(args) as Record<string, unknown>, masked: [] };
  }
  const out = copy(args) as Record<string, unknown>;
  if (applicable.length === 0) return { args: out, masked: [] };

  // Concrete path → mode, hide winning over hash. Keyed by an unambiguous form of the path
  // (a key may itself contain a dot: ["a.b"] and ["a", "b"] are two places).
  const hits = new Map<string, { path: string[]; mode: "hide" | "hash" }>();
  for (const rule of applicable) {
    for (const pattern of rule.paths) {
      if (maskPathError(pattern)) continue; // the admin API refuses these; an agent skips rather than guesses
      const found: string[][] = [];
      expand(out, pattern.split("."), [], found);
      for (const path of found) {
        const id = pathId(path);
        const prev = hits.get(id);
        if (!prev || rule.mode === "hide") hits.set(id, { path, mode: prev?.mode === "hide" ? "hide" : rule.mode });
      }
    }
  }
  // Shallow first, so a masked parent makes its children moot: each path is checked against
  // the set of masked paths through its own prefixes (linear in the paths, not quadratic).
  const ordered = [...hits.values()].map((h) => ({ ...h, key: h.path.join(".") })).sort((a, b) => a.path.length - b.path.length || (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  const masked: string[] = [];
  const done = new Set<string>();
  for (const { path, mode, key } of ordered) {
    let prefix = "";
    let moot = false;
    for (let i = 0; i < path.length - 1 && !moot; i++) {
      prefix += segmentId(path[i]!);
      moot = done.has(prefix);
    }
    if (moot) continue;
    done.add(pathId(path));
    const value = getAt(out, path);
    setAt(out, path, mode === "hide" ? MASKED : maskHash(serverId, tool, key, value));
    masked.push(key);
  }
  return { args: out, masked };
}
