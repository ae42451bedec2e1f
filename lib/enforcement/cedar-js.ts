/**
 * A JavaScript evaluator for a subset of Cedar, used by the engine
 * (lib/enforcement/engine.ts) in place of a cedar-wasm call when every policy
 * of a slice is inside the subset. cedar-wasm stays the authority: it parses
 * every policy (the subset is read from its JSON form, `policyToJson`), and
 * whatever this module is not sure of goes to it.
 *
 * Why: a cedar-wasm `statefulIsAuthorized` call costs ~250–350 µs here, almost
 * all of it converting the request's entities and context to and from JSON;
 * evaluating the few policies of a slice takes a few microseconds in JS.
 *
 * The subset: scopes (`All`, `==`, `in`, `is … in`), and conditions built from
 * literals (booleans, integers within ±(2^53 − 1), strings, entities), sets and
 * records of expressions, `principal`/`action`/`resource`/`context`, `.`,
 * `has` (also `has a.b`), `!`, `&&`, `||`, `==`, `!=`, `<`, `<=`, `>`, `>=`,
 * `in`, `is`, `like`, `contains`, `containsAll`, `containsAny` and
 * `if … then … else`. Anything else (arithmetic, extension functions such as
 * `ip()`, tags, templates, unknown JSON shapes) makes the whole slice go to
 * cedar-wasm. At request time, anything unusual (an entity listed twice, a
 * number that is not a safe integer, an extension value, an attribute of an
 * entity that is not in the request) sends that request to cedar-wasm.
 *
 * Semantics follow Cedar's: a policy is satisfied when its scope matches and
 * every `when` holds and no `unless` does, evaluated left to right with
 * short-circuiting `&&`/`||`; a type error, a missing attribute or a missing
 * record key is an evaluation error of that policy (skipped, and reported in
 * `errors`); a satisfied forbid denies, else a satisfied permit allows, else
 * deny. test/cedar-js-differential.test.ts checks it against cedar-wasm on
 * random policies and requests.
 */
import { cedar, type PolicyJson } from "./cedar";

/** A Cedar evaluation error of one policy (the policy is skipped and reported). */
class EvalError extends Error {}
/** This module is not sure: the request goes to cedar-wasm. */
class Fallback extends Error {}
/** A policy outside the subset: its slice goes to cedar-wasm. */
class Unsupported extends Error {}

const FALLBACK = new Fallback("fallback");
const evalError = (m: string) => new EvalError(m);

class EntityV {
  readonly key: string;
  constructor(
    readonly type: string,
    readonly id: string,
  ) {
    this.key = `${type}\u0000${id}`;
  }
}
class SetV {
  constructor(
    readonly items: Value[],
    readonly keys: Set<string>,
  ) {}
}
class RecordV {
  constructor(readonly attrs: Map<string, Value>) {}
}
type Value = boolean | number | string | EntityV | SetV | RecordV;

/** A canonical key: two values are equal in Cedar exactly when their keys are. */
function keyOf(v: Value): string {
  switch (typeof v) {
    case "boolean":
      return v ? "T" : "F";
    case "number":
      return `L${v}`;
    case "string":
      return `S${v}`;
  }
  if (v instanceof EntityV) return `E${v.key}`;
  if (v instanceof SetV) return `[${JSON.stringify([...v.keys].sort())}`;
  const parts: [string, string][] = [];
  for (const [k, x] of v.attrs) parts.push([k, keyOf(x)]);
  parts.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  return `{${JSON.stringify(parts)}`;
}

const equal = (a: Value, b: Value): boolean => (typeof a !== "object" || typeof b !== "object" ? a === b : a === b || keyOf(a) === keyOf(b));

function makeSet(items: Value[]): SetV {
  const keys = new Set<string>();
  const kept: Value[] = [];
  for (const v of items) {
    const k = keyOf(v);
    if (keys.has(k)) continue;
    keys.add(k);
    kept.push(v);
  }
  return new SetV(kept, keys);
}

/** One entity of a request: attributes and direct parents. */
interface StoredEntity {
  attrs: Map<string, Value>;
  parents: EntityV[];
}

/** What one request's policies are evaluated against. */
interface Env {
  principal: EntityV;
  action: EntityV;
  resource: EntityV;
  context: RecordV;
  store: Map<string, StoredEntity>;
  ancestors: Map<string, Set<string>>;
}

function ancestorsOf(env: Env, e: EntityV): Set<string> {
  let out = env.ancestors.get(e.key);
  if (out) return out;
  out = new Set<string>();
  const todo = [...(env.store.get(e.key)?.parents ?? [])];
  while (todo.length) {
    const p = todo.pop()!;
    if (out.has(p.key)) continue;
    out.add(p.key);
    const s = env.store.get(p.key);
    if (s) for (const q of s.parents) todo.push(q);
  }
  env.ancestors.set(e.key, out);
  return out;
}

const isIn = (env: Env, a: EntityV, b: EntityV) => a.key === b.key || ancestorsOf(env, a).has(b.key);
/** `a in set`, the set given as entity keys. */
function isInKeys(env: Env, a: EntityV, keys: Set<string>): boolean {
  if (keys.has(a.key)) return true;
  for (const k of ancestorsOf(env, a)) if (keys.has(k)) return true;
  return false;
}

type Expr = (env: Env) => Value;

const asBool = (v: Value): boolean => {
  if (typeof v !== "boolean") throw evalError("type error: expected a boolean");
  return v;
};
const asLong = (v: Value): number => {
  if (typeof v !== "number") throw evalError("type error: expected a Long");
  return v;
};
const asEntity = (v: Value): EntityV => {
  if (!(v instanceof EntityV)) throw evalError("type error: expected an entity");
  return v;
};
const asSet = (v: Value): SetV => {
  if (!(v instanceof SetV)) throw evalError("type error: expected a set");
  return v;
};

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);
/** The only key of a JSON object, or Unsupported. */
function only(o: unknown, ...allowed: string[]): void {
  if (!isObj(o)) throw new Unsupported("not an object");
  for (const k of Object.keys(o)) if (!allowed.includes(k)) throw new Unsupported(`unexpected key ${k}`);
}

/** A literal of a policy (JSON `Value`). */
function literal(v: unknown): Value {
  if (typeof v === "boolean" || typeof v === "string") return v;
  if (typeof v === "number") {
    if (!Number.isSafeInteger(v)) throw new Unsupported("integer out of the exact range");
    return v;
  }
  if (isObj(v) && "__entity" in v) {
    only(v, "__entity");
    return entityRef(v.__entity);
  }
  throw new Unsupported("literal");
}

function entityRef(e: unknown): EntityV {
  if (!isObj(e) || typeof e.type !== "string" || typeof e.id !== "string") throw new Unsupported("entity");
  only(e, "type", "id");
  return new EntityV(e.type, e.id);
}

const constant = (f: Expr): f is Expr & { value: Value } => "value" in f;
const lit = (v: Value): Expr => Object.assign(() => v, { value: v });

/** A Cedar `like` pattern (JSON: literal characters and "Wildcard") as a matcher over code points. */
function likeMatcher(pattern: unknown): (s: string) => boolean {
  if (!Array.isArray(pattern)) throw new Unsupported("pattern");
  const pat: (string | null)[] = pattern.map((p) => {
    if (p === "Wildcard") return null;
    if (isObj(p) && typeof p.Literal === "string" && Object.keys(p).length === 1 && [...p.Literal].length === 1) return p.Literal;
    throw new Unsupported("pattern element");
  });
  return (s) => {
    const str = [...s];
    // Iterative glob match: O(n·m) at worst, no backtracking blow-up.
    let i = 0;
    let j = 0;
    let star = -1;
    let mark = 0;
    while (i < str.length) {
      if (j < pat.length && pat[j] !== null && pat[j] === str[i]) {
        i++;
        j++;
      } else if (j < pat.length && pat[j] === null) {
        star = j++;
        mark = i;
      } else if (star >= 0) {
        j = star + 1;
        i = ++mark;
      } else return false;
    }
    while (j < pat.length && pat[j] === null) j++;
    return j === pat.length;
  };
}

function attrOf(env: Env, v: Value, attr: string): Value {
  if (v instanceof RecordV) {
    const x = v.attrs.get(attr);
    if (x === undefined) throw evalError(`record has no attribute ${attr}`);
    return x;
  }
  if (v instanceof EntityV) {
    const s = env.store.get(v.key);
    if (!s) throw FALLBACK;
    const x = s.attrs.get(attr);
    if (x === undefined) throw evalError(`entity has no attribute ${attr}`);
    return x;
  }
  throw evalError("type error: expected a record or an entity");
}

function hasAttr(env: Env, v: Value, attr: string): boolean {
  if (v instanceof RecordV) return v.attrs.has(attr);
  if (v instanceof EntityV) {
    const s = env.store.get(v.key);
    if (!s) throw FALLBACK;
    return s.attrs.has(attr);
  }
  throw evalError("type error: expected a record or an entity");
}

/** Compiles one expression of a policy's JSON form. */
function expr(e: unknown, depth = 0): Expr {
  if (depth > 200) throw new Unsupported("too deep");
  if (!isObj(e)) throw new Unsupported("expression");
  const keys = Object.keys(e);
  if (keys.length !== 1) throw new Unsupported("expression");
  const op = keys[0]!;
  const a = e[op] as Record<string, unknown>;
  const sub = (x: unknown) => expr(x, depth + 1);
  switch (op) {
    case "Value":
      return lit(literal(a));
    case "Var": {
      switch (a as unknown) {
        case "principal":
          return (env) => env.principal;
        case "action":
          return (env) => env.action;
        case "resource":
          return (env) => env.resource;
        case "context":
          return (env) => env.context;
      }
      throw new Unsupported("variable");
    }
    case "!": {
      only(a, "arg");
      const x = sub(a.arg);
      return (env) => !asBool(x(env));
    }
    case "&&":
    case "||": {
      only(a, "left", "right");
      const l = sub(a.left);
      const r = sub(a.right);
      return op === "&&" ? (env) => asBool(l(env)) && asBool(r(env)) : (env) => asBool(l(env)) || asBool(r(env));
    }
    case "==":
    case "!=": {
      only(a, "left", "right");
      const l = sub(a.left);
      const r = sub(a.right);
      return op === "==" ? (env) => equal(l(env), r(env)) : (env) => !equal(l(env), r(env));
    }
    case "<":
    case "<=":
    case ">":
    case ">=": {
      only(a, "left", "right");
      const l = sub(a.left);
      const r = sub(a.right);
      switch (op) {
        case "<":
          return (env) => asLong(l(env)) < asLong(r(env));
        case "<=":
          return (env) => asLong(l(env)) <= asLong(r(env));
        case ">":
          return (env) => asLong(l(env)) > asLong(r(env));
        default:
          return (env) => asLong(l(env)) >= asLong(r(env));
      }
    }
    case "in": {
      only(a, "left", "right");
      const l = sub(a.left);
      const r = sub(a.right);
      if (constant(r) && r.value instanceof SetV && r.value.items.every((x) => x instanceof EntityV)) {
        const set = new Set((r.value.items as EntityV[]).map((x) => x.key));
        return (env) => isInKeys(env, asEntity(l(env)), set);
      }
      return (env) => {
        const left = asEntity(l(env));
        const right = r(env);
        if (right instanceof SetV) {
          const keys = new Set<string>();
          for (const x of right.items) keys.add(asEntity(x).key);
          return isInKeys(env, left, keys);
        }
        return isIn(env, left, asEntity(right));
      };
    }
    case "is": {
      only(a, "left", "entity_type", "in");
      if (typeof a.entity_type !== "string") throw new Unsupported("is");
      const type = a.entity_type;
      const l = sub(a.left);
      if (a.in === undefined) return (env) => asEntity(l(env)).type === type;
      const r = sub(a.in);
      return (env) => {
        const left = asEntity(l(env));
        if (left.type !== type) return false;
        const right = r(env);
        if (right instanceof SetV) {
          const keys = new Set<string>();
          for (const x of right.items) keys.add(asEntity(x).key);
          return isInKeys(env, left, keys);
        }
        return isIn(env, left, asEntity(right));
      };
    }
    case "contains": {
      only(a, "left", "right");
      const l = sub(a.left);
      const r = sub(a.right);
      if (constant(l) && l.value instanceof SetV) {
        const keys = l.value.keys;
        return (env) => {
          const v = r(env);
          return keys.has(keyOf(v));
        };
      }
      return (env) => {
        const s = asSet(l(env));
        return s.keys.has(keyOf(r(env)));
      };
    }
    case "containsAll":
    case "containsAny": {
      only(a, "left", "right");
      const l = sub(a.left);
      const r = sub(a.right);
      return (env) => {
        const s = asSet(l(env));
        const t = asSet(r(env));
        if (op === "containsAll") {
          for (const k of t.keys) if (!s.keys.has(k)) return false;
          return true;
        }
        for (const k of t.keys) if (s.keys.has(k)) return true;
        return false;
      };
    }
    case "like": {
      only(a, "left", "pattern");
      const l = sub(a.left);
      const match = likeMatcher(a.pattern);
      return (env) => {
        const v = l(env);
        if (typeof v !== "string") throw evalError("type error: expected a string");
        return match(v);
      };
    }
    case ".": {
      only(a, "left", "attr");
      if (typeof a.attr !== "string") throw new Unsupported("attribute");
      const attr = a.attr;
      const l = sub(a.left);
      return (env) => attrOf(env, l(env), attr);
    }
    case "has": {
      only(a, "left", "attr");
      const path = typeof a.attr === "string" ? [a.attr] : Array.isArray(a.attr) && a.attr.length > 0 && a.attr.every((x) => typeof x === "string") ? (a.attr as string[]) : null;
      if (!path) throw new Unsupported("has");
      const l = sub(a.left);
      if (path.length === 1) {
        const attr = path[0]!;
        return (env) => hasAttr(env, l(env), attr);
      }
      return (env) => {
        // `e has a.b` is `e has a && e.a has b`; anything but records along the way goes to cedar-wasm.
        let cur = l(env);
        for (let i = 0; i < path.length; i++) {
          if (!hasAttr(env, cur, path[i]!)) return false;
          if (i === path.length - 1) return true;
          cur = attrOf(env, cur, path[i]!);
          if (!(cur instanceof RecordV)) throw FALLBACK;
        }
        return true;
      };
    }
    case "if-then-else": {
      only(a, "if", "then", "else");
      const c = sub(a.if);
      const t = sub(a.then);
      const f = sub(a.else);
      return (env) => (asBool(c(env)) ? t(env) : f(env));
    }
    case "Set": {
      if (!Array.isArray(a)) throw new Unsupported("set");
      const items = (a as unknown[]).map(sub);
      if (items.every(constant)) return lit(makeSet(items.map((i) => (i as { value: Value }).value)));
      return (env) => makeSet(items.map((i) => i(env)));
    }
    case "Record": {
      if (!isObj(a)) throw new Unsupported("record");
      const fields: [string, Expr][] = Object.keys(a).map((k) => [k, sub(a[k])]);
      return (env) => {
        const m = new Map<string, Value>();
        for (const [k, f] of fields) m.set(k, f(env));
        return new RecordV(m);
      };
    }
  }
  // Arithmetic, extension functions, tags, slots, unknowns: not in the subset.
  throw new Unsupported(`operator ${op}`);
}

type ScopeTest = (env: Env) => boolean;

function scope(s: unknown, which: "principal" | "action" | "resource"): ScopeTest {
  if (!isObj(s)) throw new Unsupported("scope");
  const pick = (env: Env) => env[which];
  switch (s.op) {
    case "All":
      only(s, "op");
      return () => true;
    case "==": {
      only(s, "op", "entity");
      const e = entityRef(s.entity);
      return (env) => pick(env).key === e.key;
    }
    case "in": {
      if (which === "action" && Array.isArray(s.entities)) {
        only(s, "op", "entities");
        const keys = new Set((s.entities as unknown[]).map((x) => entityRef(x).key));
        return (env) => isInKeys(env, pick(env), keys);
      }
      only(s, "op", "entity");
      const e = entityRef(s.entity);
      return (env) => isIn(env, pick(env), e);
    }
    case "is": {
      if (which === "action") throw new Unsupported("action is");
      only(s, "op", "entity_type", "in");
      if (typeof s.entity_type !== "string") throw new Unsupported("is");
      const type = s.entity_type;
      if (s.in === undefined) return (env) => pick(env).type === type;
      only(s.in, "entity");
      const e = entityRef((s.in as { entity: unknown }).entity);
      return (env) => pick(env).type === type && isIn(env, pick(env), e);
    }
  }
  throw new Unsupported("scope operator");
}

/** One policy, compiled. */
interface CompiledPolicy {
  forbid: boolean;
  /** True when satisfied; throws EvalError (an evaluation error) or Fallback. */
  test: (env: Env) => boolean;
}

function compilePolicy(json: PolicyJson): CompiledPolicy {
  const p = json as unknown as Record<string, unknown>;
  only(p, "effect", "principal", "action", "resource", "conditions", "annotations");
  if (p.effect !== "permit" && p.effect !== "forbid") throw new Unsupported("effect");
  const tests: ScopeTest[] = [scope(p.principal, "principal"), scope(p.action, "action"), scope(p.resource, "resource")];
  if (!Array.isArray(p.conditions)) throw new Unsupported("conditions");
  const conds: { unless: boolean; body: Expr }[] = (p.conditions as unknown[]).map((c) => {
    only(c, "kind", "body");
    const k = (c as { kind: unknown }).kind;
    if (k !== "when" && k !== "unless") throw new Unsupported("condition kind");
    return { unless: k === "unless", body: expr((c as { body: unknown }).body) };
  });
  return {
    forbid: p.effect === "forbid",
    test: (env) => {
      for (const t of tests) if (!t(env)) return false;
      for (const c of conds) {
        const v = asBool(c.body(env));
        if (v === c.unless) return false;
      }
      return true;
    },
  };
}

/** Compiled policies by their text, shared by every engine of the process (null: outside the subset). */
const byText = new Map<string, CompiledPolicy | null>();
/** Past this many distinct texts the cache starts over (texts are recompiled on use). */
const MAX_COMPILED_TEXTS = 50_000;

function compiledText(text: string): CompiledPolicy | null {
  const known = byText.get(text);
  if (known !== undefined) return known;
  let out: CompiledPolicy | null = null;
  const j = cedar.policyToJson(text);
  if (j.type === "success") {
    try {
      out = compilePolicy(j.json);
    } catch (err) {
      if (!(err instanceof Unsupported)) throw err;
      out = null;
    }
  }
  if (byText.size >= MAX_COMPILED_TEXTS) byText.clear();
  byText.set(text, out);
  return out;
}

/** A slice's policies compiled for the JS evaluator. */
export interface JsSlice {
  readonly policies: readonly { id: string; policy: CompiledPolicy }[];
}

/**
 * Compiles a slice (policy id → Cedar text of one static policy), or null when
 * any policy is outside the subset (the slice is then always decided by cedar-wasm).
 */
export function compileSlice(policies: Record<string, string>): JsSlice | null {
  const out: { id: string; policy: CompiledPolicy }[] = [];
  for (const id of Object.keys(policies)) {
    const c = compiledText(policies[id]!);
    if (!c) return null;
    out.push({ id, policy: c });
  }
  return { policies: out };
}

/** The request as the engine gives it to cedar-wasm's `statefulIsAuthorized`. */
export interface AuthorizationCall {
  principal: { type: string; id: string };
  action: { type: string; id: string };
  resource: { type: string; id: string };
  context: Record<string, unknown>;
  entities: unknown[];
}

/** cedar-wasm's answer shape (what the engine reads of it). */
export interface JsAnswer {
  type: "success";
  response: { decision: "allow" | "deny"; diagnostics: { reason: string[]; errors: { policyId: string; error: { message: string } }[] } };
  warnings: never[];
}

/** A JSON value of an entity attribute or the context, as Cedar reads it without a schema. */
function jsonValue(v: unknown, depth: number): Value {
  if (depth > 64) throw FALLBACK;
  switch (typeof v) {
    case "boolean":
    case "string":
      return v;
    case "number":
      if (!Number.isSafeInteger(v)) throw FALLBACK;
      return v;
  }
  if (Array.isArray(v)) {
    const items: Value[] = [];
    for (const x of v) items.push(jsonValue(x, depth + 1));
    return makeSet(items);
  }
  if (isObj(v)) {
    // Escapes (__entity, __extn) and the implicit { type, id } form: left to cedar-wasm.
    const keys = Object.keys(v);
    if ("__entity" in v || "__extn" in v || (keys.length === 2 && "type" in v && "id" in v)) throw FALLBACK;
    const m = new Map<string, Value>();
    for (const k of keys) m.set(k, jsonValue(v[k], depth + 1));
    return new RecordV(m);
  }
  throw FALLBACK;
}

const uidOf = (u: unknown): EntityV => {
  if (!isObj(u) || typeof u.type !== "string" || typeof u.id !== "string" || Object.keys(u).length !== 2) throw FALLBACK;
  return new EntityV(u.type, u.id);
};

/** Static entities (the bundle's) are the same objects on every call: converted once. */
const converted = new WeakMap<object, { uid: EntityV; stored: StoredEntity }>();

function entityOf(e: unknown): { uid: EntityV; stored: StoredEntity } {
  if (!isObj(e)) throw FALLBACK;
  const known = converted.get(e);
  if (known) return known;
  for (const k of Object.keys(e)) if (k !== "uid" && k !== "attrs" && k !== "parents") throw FALLBACK;
  const uid = uidOf(e.uid);
  const attrs = e.attrs === undefined ? new RecordV(new Map()) : jsonValue(e.attrs, 0);
  if (!(attrs instanceof RecordV)) throw FALLBACK;
  if (e.parents !== undefined && !Array.isArray(e.parents)) throw FALLBACK;
  const parents = ((e.parents as unknown[] | undefined) ?? []).map(uidOf);
  const out = { uid, stored: { attrs: attrs.attrs, parents } };
  converted.set(e, out);
  return out;
}

/** A request's context and own entities (those not seen before: the principal, its groups), converted. */
interface Prepared {
  context: RecordV;
  own: [string, StoredEntity][];
}

/**
 * The last request's converted context and own entities, reused while they
 * are the same: a list decides hundreds of entries for one caller, and only
 * the resource changes between them. Keyed by their JSON text; one entry.
 */
export class PreparedRequest {
  private key: string | null = null;
  private value: Prepared | null = null;

  /** The conversion for this key, made by `make` unless it is the last one's. */
  get(key: string | null, make: () => Prepared): Prepared {
    if (key !== null && key === this.key && this.value) return this.value;
    const value = make();
    if (key !== null) {
      this.key = key;
      this.value = value;
    }
    return value;
  }
}

const keyReplacer = (_k: string, v: unknown) => (v === undefined ? "\u0000undefined" : typeof v === "number" && !Number.isFinite(v) ? `\u0000${v}` : typeof v === "bigint" ? `\u0000${v}n` : v);

function prepare(context: unknown, own: unknown[]): Prepared {
  const seen = new Set<string>();
  const out: [string, StoredEntity][] = [];
  for (const e of own) {
    const { uid, stored } = entityOf(e);
    if (seen.has(uid.key)) throw FALLBACK; // cedar-wasm refuses duplicates
    seen.add(uid.key);
    out.push([uid.key, stored]);
  }
  const ctx = jsonValue(context, 0);
  if (!(ctx instanceof RecordV)) throw FALLBACK;
  return { context: ctx, own: out };
}

/**
 * Decides a request with a compiled slice, as cedar-wasm's
 * `statefulIsAuthorized` would with the same policies; null when cedar-wasm
 * must decide it (something at request time is outside what this module is sure of).
 * `prepared` (optional) keeps the last request's conversion for the next call.
 */
export function evaluateSlice(slice: JsSlice, call: AuthorizationCall, prepared?: PreparedRequest): JsAnswer | null {
  let env: Env;
  try {
    // Entities converted before (the bundle's static ones, the same objects on every call) are reused as they are.
    const own: unknown[] = [];
    const known: { uid: EntityV; stored: StoredEntity }[] = [];
    for (const e of call.entities) {
      const c = isObj(e) ? converted.get(e) : undefined;
      if (c) known.push(c);
      else own.push(e);
    }
    let key: string | null = null;
    if (prepared) {
      try {
        // JSON text alone would not tell undefined from absent, nor NaN or ±Infinity from null: they are marked.
        key = JSON.stringify([call.context, own], keyReplacer);
      } catch {
        key = null;
      }
    }
    const base = prepared ? prepared.get(key, () => prepare(call.context, own)) : prepare(call.context, own);
    const store = new Map<string, StoredEntity>(base.own);
    for (const { uid, stored } of known) {
      if (store.has(uid.key)) throw FALLBACK; // cedar-wasm refuses duplicates
      store.set(uid.key, stored);
    }
    env = { principal: uidOf(call.principal), action: uidOf(call.action), resource: uidOf(call.resource), context: base.context, store, ancestors: new Map() };
  } catch (err) {
    if (err instanceof Fallback) return null;
    throw err;
  }
  const forbids: string[] = [];
  const permits: string[] = [];
  const errors: string[] = [];
  for (const { id, policy } of slice.policies) {
    try {
      if (policy.test(env)) (policy.forbid ? forbids : permits).push(id);
    } catch (err) {
      if (err instanceof EvalError) errors.push(id);
      // Fallback, or anything unexpected in this module: cedar-wasm decides.
      else return null;
    }
  }
  forbids.sort();
  permits.sort();
  errors.sort();
  const decision = forbids.length === 0 && permits.length > 0 ? "allow" : "deny";
  return {
    type: "success",
    response: { decision, diagnostics: { reason: forbids.length ? forbids : permits, errors: errors.map((policyId) => ({ policyId, error: { message: "evaluation error" } })) } },
    warnings: [],
  };
}
