// The one place cedar-wasm is loaded. The `/nodejs` entry works on Node 20
// (the root entry imports a .wasm file Node cannot load).
//
// Every call goes through a guard (`cedar` below is not the raw module):
// - Cedar recurses over the text's structure and a deep input overflows the
//   WASM stack: about 150 nested parentheses trap with "memory access out of
//   bounds" and leave the instance broken for every later call, and long
//   `&&`/`.`/`if` chains do the same. So text and JSON are bounded *before*
//   Cedar sees them (`scanCedarText`, `jsonDepthExceeds`), and a refusal comes
//   back as an ordinary Cedar failure answer with a position.
// - A call that throws (a trap, a stack overflow, a panic) leaves the
//   instance in an unknown state: it is dropped and a fresh one is loaded, and
//   the call answers a failure (callers already fail closed on failures).
//   Policy sets preparsed in the old instance are preparsed again on use.
import { existsSync } from "node:fs";
import { isAbsolute, join } from "node:path";
import * as loaded from "@cedar-policy/cedar-wasm/nodejs";
import type { DetailedError } from "@cedar-policy/cedar-wasm/nodejs";

export type { DetailedError, SchemaJson, PolicyJson } from "@cedar-policy/cedar-wasm/nodejs";

type CedarModule = typeof loaded;

/** Bounds every Cedar input must meet before Cedar parses it (measured: see docs/security.md). */
export const CEDAR_LIMITS = {
  /** Bytes of one Cedar text (a policy set, one policy of a record, a schema). */
  maxTextBytes: 256 * 1024,
  /** Open ( [ { (and < in schema text) at once. 100 levels already overflow some entry points. */
  maxNesting: 32,
  /** Estimated expression depth: nesting plus operator chains (`&&`, `||`, `if`, `.`, comparisons, arithmetic). */
  maxExprDepth: 60,
  /** Containers nested in a JSON argument (policy JSON, schema JSON, entities, context). Cedar's JSON reader stops at 128. */
  maxJsonDepth: 126,
} as const;

/** Why a text or value was refused before Cedar saw it; `offset` is a byte offset into the text. */
export interface CedarBoundIssue {
  message: string;
  offset: number;
}

/** Turns a byte offset in `text` into a 1-based line and column. */
export function lineCol(text: string, offset: number): { line: number; column: number } {
  const before = Buffer.from(text).subarray(0, offset).toString("utf8");
  const lines = before.split("\n");
  return { line: lines.length, column: (lines[lines.length - 1]?.length ?? 0) + 1 };
}

/**
 * One bracket level of the scan. Cedar's `&&` and `||` chains nest to the left
 * (`((a && b) && c)`): the i-th operand of an n-operand chain sits n - max(i, 1)
 * levels down, so a deep operand late in a chain costs less than an early one.
 */
interface Frame {
  at: number;
  /** Levels the bracket itself adds: 1 for a set, a record or a call, 0 for grouping parentheses. */
  base: number;
  /** The current operand: its operators and its deepest bracket. */
  ops: number;
  child: number;
  /** The current `&&` chain: index of the operand, and max over operands of depth - max(index, 1). */
  andIdx: number;
  andAdj: number;
  /** The current `||` chain, the same over its disjuncts. */
  orIdx: number;
  orAdj: number;
  /** `if`s of the current element (each nests what follows), and the deepest `||` chain between them. */
  ifs: number;
  ifMax: number;
  elemMax: number;
}

const frame = (at: number, base: number): Frame => ({ at, base, ops: 0, child: 0, andIdx: 0, andAdj: -Infinity, orIdx: 0, orAdj: -Infinity, ifs: 0, ifMax: 0, elemMax: 0 });

const isWordStart = (c: number) => (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c === 95;
const isWord = (c: number) => isWordStart(c) || (c >= 48 && c <= 57);
const CHAIN_WORDS = new Set(["if"]);
const RESET_WORDS = new Set(["then", "else"]);
const OP_WORDS = new Set(["in", "has", "like", "is"]);

/**
 * One linear pass over Cedar text (policies, or a schema with `schema: true`)
 * that refuses it when it is too large or too deeply nested for Cedar's
 * recursive parser. String literals and `//` comments are skipped. The depth
 * estimate is an upper bound of the expression tree's depth: per bracket
 * level, its `if`s, plus its `||` and `&&` chains (each operand counted at
 * the depth its position in the left-nested chain puts it), plus an
 * operand's operators (`.`, comparisons, arithmetic, `in`, `has`, `like`,
 * `is`, unary), plus the deepest bracket inside it (sets, records and calls
 * add a level; grouping parentheses add none, but count for nesting).
 */
export function scanCedarText(text: string, opts: { schema?: boolean; limits?: Partial<typeof CEDAR_LIMITS> } = {}): CedarBoundIssue | null {
  const lim = { ...CEDAR_LIMITS, ...opts.limits };
  // UTF-16 length bounds the byte length from below: a huge string is refused before it is measured.
  if (text.length > lim.maxTextBytes || Buffer.byteLength(text) > lim.maxTextBytes) {
    return { message: `the Cedar text is ${Buffer.byteLength(text)} bytes; at most ${lim.maxTextBytes} are accepted`, offset: 0 };
  }
  const stack: Frame[] = [];
  const top = frame(0, 0);
  const cur = () => stack[stack.length - 1] ?? top;
  const endOperand = (f: Frame) => {
    f.andAdj = Math.max(f.andAdj, f.ops + f.child - Math.max(f.andIdx, 1));
    f.ops = 0;
    f.child = 0;
  };
  const endDisjunct = (f: Frame) => {
    endOperand(f);
    f.orAdj = Math.max(f.orAdj, f.andIdx + 1 + f.andAdj - Math.max(f.orIdx, 1));
    f.andIdx = 0;
    f.andAdj = -Infinity;
  };
  const endOr = (f: Frame) => {
    endDisjunct(f);
    f.ifMax = Math.max(f.ifMax, f.orIdx + 1 + f.orAdj);
    f.orIdx = 0;
    f.orAdj = -Infinity;
  };
  const endElement = (f: Frame) => {
    endOr(f);
    f.elemMax = Math.max(f.elemMax, f.ifs + f.ifMax);
    f.ifs = 0;
    f.ifMax = 0;
  };
  // Byte offsets for positions: count UTF-8 bytes as we go.
  let byte = 0;
  const tooDeep = (f: Frame): CedarBoundIssue => ({
    message: `this expression is nested too deeply (more than ${lim.maxExprDepth} levels of brackets and chained operators); split it into smaller conditions or policies`,
    offset: f.at,
  });
  const close = (): CedarBoundIssue | null => {
    const f = stack.pop()!;
    endElement(f);
    const depth = f.elemMax + f.base;
    if (depth > lim.maxExprDepth) return tooDeep(f);
    const p = cur();
    p.child = Math.max(p.child, depth);
    return null;
  };
  const n = text.length;
  let i = 0;
  // The last significant character (whitespace and comments skipped): tells a call's parenthesis from a grouping one.
  let prev = 32;
  while (i < n) {
    const c = text.charCodeAt(i);
    const start = byte;
    if (c === 34) {
      // A string literal: skip to its closing quote, honouring escapes.
      let j = i + 1;
      while (j < n && text.charCodeAt(j) !== 34) j += text.charCodeAt(j) === 92 ? 2 : 1;
      const end = Math.min(j + 1, n);
      byte += Buffer.byteLength(text.slice(i, end));
      i = end;
      prev = 34;
      continue;
    }
    if (c === 47 && text.charCodeAt(i + 1) === 47) {
      let j = i;
      while (j < n && text.charCodeAt(j) !== 10) j++;
      byte += Buffer.byteLength(text.slice(i, j));
      i = j;
      continue;
    }
    if (isWordStart(c)) {
      let j = i + 1;
      while (j < n && isWord(text.charCodeAt(j))) j++;
      const w = text.slice(i, j);
      const f = cur();
      if (CHAIN_WORDS.has(w)) {
        endOr(f);
        f.ifs++;
      } else if (RESET_WORDS.has(w)) endOr(f);
      else if (OP_WORDS.has(w)) f.ops++;
      byte += j - i;
      i = j;
      prev = 97;
      continue;
    }
    const next = text.charCodeAt(i + 1);
    const f = cur();
    let len = 1;
    if (c === 40 || c === 91 || c === 123 || (opts.schema && c === 60)) {
      // Parentheses only group, unless they are a call's (`ip(…)`; a method call's `.` is counted as an operator).
      stack.push(frame(start, c === 40 && !isWord(prev) ? 0 : 1));
      if (stack.length > lim.maxNesting) return { message: `brackets are nested more than ${lim.maxNesting} levels deep`, offset: start };
    } else if (c === 41 || c === 93 || c === 125 || (opts.schema && c === 62)) {
      if (stack.length) {
        const bad = close();
        if (bad) return bad;
      }
    } else if (c === 44) endElement(f);
    else if (c === 59 && stack.length === 0) endElement(f);
    else if (c === 124 && next === 124) {
      endDisjunct(f);
      f.orIdx++;
      len = 2;
    } else if (c === 38 && next === 38) {
      endOperand(f);
      f.andIdx++;
      len = 2;
    } else if ((c === 61 || c === 33 || c === 60 || c === 62) && next === 61) {
      f.ops++;
      len = 2;
    } else if (c === 58 && next === 58) len = 2;
    else if (c === 33 || c === 60 || c === 62 || c === 43 || c === 45 || c === 42 || c === 46) f.ops++;
    byte += c < 0x80 ? len : Buffer.byteLength(text.slice(i, i + len));
    i += len;
    if (c !== 32 && c !== 9 && c !== 10 && c !== 13) prev = c;
    if (c >= 0xd800 && c <= 0xdbff) {
      // A surrogate pair: its second half belongs to the same character (already counted).
      i++;
    }
  }
  // Unclosed brackets: Cedar reports the syntax error; their depth is still bounded here.
  while (stack.length) {
    const bad = close();
    if (bad) return bad;
  }
  endElement(top);
  if (top.elemMax > lim.maxExprDepth) return tooDeep(top);
  return null;
}

/** True when `value` nests arrays/objects deeper than `max` (iterative: a deep value cannot overflow this check). */
export function jsonDepthExceeds(value: unknown, max: number): boolean {
  const stack: [unknown, number][] = [[value, 0]];
  while (stack.length) {
    const [v, d] = stack.pop()!;
    if (!v || typeof v !== "object") continue;
    if (d + 1 > max) return true;
    const children = Array.isArray(v) ? v : Object.values(v as Record<string, unknown>);
    for (const c of children) if (c && typeof c === "object") stack.push([c, d + 1]);
  }
  return false;
}

type TextKind = "policy" | "schema";

/** Which positional arguments of each Cedar function are text (or hold text under known keys). */
const ARG_KINDS: Record<string, (TextKind | "walk" | null)[]> = {
  policySetTextToParts: ["policy"],
  policyToJson: ["policy"],
  policyToText: ["policy"],
  templateToJson: ["policy"],
  templateToText: ["policy"],
  checkParsePolicySet: ["policy"],
  preparsePolicySet: [null, "policy"],
  checkParseSchema: ["schema"],
  schemaToJson: ["schema"],
  schemaToText: ["schema"],
  schemaToJsonWithResolvedTypes: ["schema"],
  preparseSchema: [null, "schema"],
  getValidRequestEnvsPolicy: ["policy", "schema"],
  getValidRequestEnvsTemplate: ["policy", "schema"],
};
/** Keys whose value is policy text, or a record of policy texts (by id). */
const POLICY_KEYS = new Set(["staticPolicies", "templates", "policyText", "policies"]);

const refusal = (issue: CedarBoundIssue, where?: string): DetailedError =>
  ({
    message: `${where ? `${where}: ` : ""}${issue.message}`,
    help: null,
    code: null,
    url: null,
    severity: "error",
    sourceLocations: where ? [] : [{ start: issue.offset, end: issue.offset }],
  }) as unknown as DetailedError;

/**
 * Checks the arguments of one Cedar call against CEDAR_LIMITS: every text is
 * scanned, every structured argument's depth bounded. Returns the problems
 * (as Cedar would report them), or null when the call may proceed.
 */
export function boundCedarCall(fn: string, args: unknown[]): DetailedError[] | null {
  const kinds = ARG_KINDS[fn] ?? [];
  for (let a = 0; a < args.length; a++) {
    const v = args[a];
    if (v && typeof v === "object" && jsonDepthExceeds(v, CEDAR_LIMITS.maxJsonDepth)) {
      return [refusal({ message: `the input is nested more than ${CEDAR_LIMITS.maxJsonDepth} levels deep`, offset: 0 }, "input")];
    }
    const bad = boundValue(v, kinds[a] ?? "walk");
    if (bad) return [bad];
  }
  return null;
}

function boundValue(v: unknown, kind: TextKind | "walk" | null): DetailedError | null {
  if (kind === null) return null;
  if (typeof v === "string") {
    if (kind === "walk") return null;
    const issue = scanCedarText(v, { schema: kind === "schema" });
    return issue ? refusal(issue) : null;
  }
  if (!v || typeof v !== "object" || Array.isArray(v)) return null;
  const o = v as Record<string, unknown>;
  for (const [k, child] of Object.entries(o)) {
    if (k === "schema") {
      const bad = boundValue(child, "schema");
      if (bad) return bad;
    } else if (POLICY_KEYS.has(k) && typeof child === "string") {
      const bad = boundValue(child, "policy");
      if (bad) return bad;
    } else if (POLICY_KEYS.has(k) && child && typeof child === "object" && !Array.isArray(child)) {
      const c = child as Record<string, unknown>;
      // A PolicySet object ({ staticPolicies, templates, … }) or a record of policies by id.
      if ("staticPolicies" in c || "templates" in c || "templateLinks" in c) {
        const bad = boundValue(c, "walk");
        if (bad) return bad;
        continue;
      }
      for (const [id, text] of Object.entries(c)) {
        if (typeof text !== "string") continue;
        const issue = scanCedarText(text);
        if (issue) return refusal(issue, `policy ${JSON.stringify(id.slice(0, 100))}`);
      }
    }
  }
  return null;
}

/** True for an error that means a WASM instance can no longer be trusted. */
export function isCedarTrap(err: unknown): boolean {
  if (err instanceof WebAssembly.RuntimeError) return true;
  const m = err instanceof Error ? err.message : String(err);
  return /unreachable|memory access out of bounds|Maximum call stack size exceeded|RuntimeError/i.test(m);
}

/** Where cedar-wasm's Node entry lives (also loaded by the isolated worker). */
export function cedarModulePath(): string {
  // Reached through process.getBuiltinModule and a computed name, so no bundler rewrites the
  // resolution into a module id: this must be a real file path for a fresh load and for the worker.
  const { createRequire } = process.getBuiltinModule("node:module");
  const spec = ["@cedar-policy", "cedar-wasm", "nodejs"].join("/");
  // From this module when it is a file on disk (tsx, vitest, the agent); else from the app's root (bundled server code).
  for (const base of [import.meta.url, join(process.cwd(), "package.json")]) {
    try {
      const path = createRequire(base).resolve(spec);
      if (typeof path === "string" && isAbsolute(path) && existsSync(path)) return path;
    } catch {
      // try the next base
    }
  }
  throw new Error("cedar-wasm's Node entry cannot be located");
}

/** Evaluates cedar-wasm's glue again: a new module instance with fresh memory. */
function loadFresh(): CedarModule {
  const { createRequire } = process.getBuiltinModule("node:module");
  const path = cedarModulePath();
  const req = createRequire(path);
  delete req.cache[path];
  return req(path) as CedarModule;
}

let instance: CedarModule = loaded;
let generation = 0;
let replacements = 0;
/** Policy sets preparsed through this guard: preparsed again in a replacement instance before use. */
const preparsedSets = new Map<string, { set: unknown; generation: number }>();

function replaceInstance() {
  replacements++;
  generation++;
  try {
    instance = loadFresh();
  } catch {
    // Could not load a new one: keep refusing rather than use the trapped instance.
    instance = new Proxy({} as CedarModule, {
      get: () => () => {
        throw new Error("cedar-wasm could not be reloaded");
      },
    });
  }
}

/** How many times a trapped instance was replaced in this process (for tests and metrics). */
export function cedarReplacements(): number {
  return replacements;
}

const failure = (errors: DetailedError[]) => ({ type: "failure" as const, errors, warnings: [] as DetailedError[] });

function guarded(fn: string) {
  return (...args: unknown[]) => {
    const refused = boundCedarCall(fn, args);
    if (refused) return failure(refused);
    try {
      if (fn === "statefulIsAuthorized") {
        const id = (args[0] as { preparsedPolicySetId?: string })?.preparsedPolicySetId;
        const known = id ? preparsedSets.get(id) : undefined;
        if (id && known && known.generation !== generation) {
          const again = instance.preparsePolicySet(id, known.set as never);
          if (again.type !== "success") return again;
          known.generation = generation;
        }
      }
      const answer = (instance as unknown as Record<string, (...a: unknown[]) => unknown>)[fn]!(...args);
      if (fn === "preparsePolicySet" && (answer as { type?: string })?.type === "success") preparsedSets.set(args[0] as string, { set: args[1], generation });
      return answer;
    } catch (err) {
      // Cedar answers failures as values; a throw is a trap, a stack overflow or a panic. Never reuse the instance.
      replaceInstance();
      return failure([refusal({ message: `the policy engine failed on this input (${isCedarTrap(err) ? "a WebAssembly trap" : "an internal error"}) and was restarted`, offset: 0 }, "input")]);
    }
  };
}

/** cedar-wasm behind the input bounds and the trap guard; same functions and answers as the module. */
export const cedar: CedarModule = Object.freeze(
  Object.fromEntries(Object.keys(loaded).map((k) => [k, typeof (loaded as Record<string, unknown>)[k] === "function" ? guarded(k) : (loaded as Record<string, unknown>)[k]])),
) as unknown as CedarModule;
