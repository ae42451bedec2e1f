import { randomBytes } from "node:crypto";
import { filterList, type DecidePrincipal, type DecisionView, type ListFiltered, type ListKind } from "@/lib/enforcement/decide";

/** Most lists remembered per (bundle view, drift set); the oldest is forgotten first. */
export const MAX_LIST_MEMO_ENTRIES = 64;
/** Most characters of remembered list text, plus bytes of remembered answers, per (bundle view, drift set) … */
export const MAX_LIST_MEMO_CHARS = 16_000_000;
/** … and of one list: a longer one is filtered afresh each time. */
export const MAX_LIST_MEMO_TEXT = 4_000_000;

/** Most serialized answers remembered per list (one per method, era and cache hint). */
export const MAX_ANSWERS_PER_LIST = 4;

interface Remembered {
  /** Indexes of the kept items, in order. */
  kept: number[];
  hidden: string[];
  changed: ListFiltered<unknown>["changed"];
  record: ListFiltered<unknown>["record"];
  /** Keyed by the upstream message's text (not its items): its answers, serialized around the id (`rememberedAnswer`). */
  message: boolean;
  answers: Answer[];
  /** The memo it is in (its bytes count against the memo's bound). */
  memo: Memo;
  /** The text it is keyed by (the map's own key string, not a copy). */
  text: string;
  /**
   * That text UTF-8 encoded, set when its first answer is remembered (`serializeAnswer`), for comparing
   * an upstream event's undecoded bytes with it (`rememberedTexts`); null when the text has a line break
   * (it could not be one SSE data line) or does not decode back to itself.
   */
  bytes?: Buffer | null;
}

/**
 * What a screened list message's answer depends on besides its text without the id and the memo's
 * key: the method its id was forwarded as, the era (stateless answers get cache hints added) and the
 * cache hints the answer got (`ttlMs` is clamped to the bundle's freshness, so it may change with time:
 * `hints` is what the agent/proxy.ts computed, compared by the caller on each reuse).
 */
export interface AnswerKey {
  method: string;
  stateless: boolean;
  hints: { has: boolean; upstream: number | null; out: number | undefined };
}

/** A serialized answer: `before` + the JSON text of the id + `after`, UTF-8 encoded once (written as they are). */
interface Answer extends AnswerKey {
  before: Buffer;
  after: Buffer;
}

/** An answer's JSON text in three parts, written one after the other: no copy of the remembered bytes. */
export interface AnswerParts {
  before: Buffer;
  id: string;
  after: Buffer;
}

/** The JSON text of an answer in parts. */
export const partsText = (a: AnswerParts): string => a.before.toString("utf8") + a.id + a.after.toString("utf8");
/** Its length in bytes. */
export const partsBytes = (a: AnswerParts): number => a.before.length + Buffer.byteLength(a.id) + a.after.length;

interface Memo {
  /** Caller key → exact text of what was filtered → the answer (two levels: the long text is never copied into a key). */
  map: Map<string, Map<string, Remembered>>;
  /** Insertion order of (caller key, text), for the bounds. */
  order: [string, string][];
  /** Characters of the remembered texts plus bytes of their serialized answers and encoded texts. */
  chars: number;
  /** Whether a text was ever encoded here (`rememberedTexts` has nothing to look up before). */
  encoded: boolean;
}

/** Per decision view (one bundle content and engine), per drift set (one installed bundle): remembered lists. */
const memos = new WeakMap<DecisionView, WeakMap<ReadonlySet<string>, Memo>>();
const NO_DRIFT: ReadonlySet<string> = new Set();

/**
 * The raw text of a parsed upstream message, for the memo's key, by its `result` object: the
 * message's JSON text without its trailing `"id":<id>}` member (what differs between two answers to
 * the same list). Two texts with the same prefix that each end with their own id parse to the same
 * result (JSON.parse is a function of the text; the stripped member is the top-level object's last),
 * so the prefix stands for the result without serializing it again. Set only when the text ends so.
 */
const rawTexts = new WeakMap<object, string>();

/** Notes the text a message was parsed from (agent/proxy.ts calls it right after JSON.parse of an upstream message). */
export function noteUpstreamText(m: unknown, text: string): void {
  if (typeof m !== "object" || m === null || Array.isArray(m)) return;
  const { id, result } = m as { id?: unknown; result?: unknown };
  if (typeof result !== "object" || result === null || Array.isArray(result) || (typeof id !== "string" && typeof id !== "number")) return;
  const suffix = `"id":${JSON.stringify(id)}}`;
  const end = text.trimEnd();
  if (end.length > MAX_LIST_MEMO_TEXT || !end.endsWith(suffix)) return;
  rawTexts.set(result, end.slice(0, end.length - suffix.length));
}

/**
 * `filterList()` with a whole-list memo: a list filtered before for the same
 * caller, server and kind under the same bundle view and drift set, from the
 * same text, gets the same answer without deciding its entries again. The
 * answer is a function of exactly these inputs when no policy of the server
 * and tenant reads the clock or the caller's address
 * (`PolicyEngine.readsClockOrAddress`; otherwise nothing is remembered): the
 * gate (revocation, tenant, method, client approval) reads the principal and
 * the bundle, each entry its JSON text, the approved catalogue, the drift set
 * and Cedar over the principal's fields. The text is the upstream message's
 * own (`noteUpstreamText`, given `result`, the parsed result the items are
 * in) or else the items serialized; it is compared in full on a hit, never
 * trusted to a hash. Every cache goes with a bundle change: the memo hangs off
 * the decision view (each bundle revision, live-only ones included, is a new
 * view) and the installed bundle's drift set (which only grows: its size is in
 * the key). Kept items are the current answer's own objects (by index), so
 * what is sent is what was parsed now. Bounded per view. `MANDATE_LIST_MEMO=0`
 * turns it off (benches compare both).
 */
export function filterListRemembered<T>(
  view: DecisionView,
  request: { serverId: string; principal: DecidePrincipal; time?: Date },
  kind: ListKind,
  items: readonly T[],
  live: { drifted?: ReadonlySet<string> } = {},
  result?: object,
): ListFiltered<T> {
  const drifted = live.drifted ?? NO_DRIFT;
  const p = request.principal;
  if (process.env.MANDATE_LIST_MEMO === "0" || !Array.isArray(items) || view.engine.readsClockOrAddress(request.serverId, p.tenantId)) return filterList(view, request, kind, items, live);
  const raw = result !== undefined && (result as Record<string, unknown>)[kind] === items ? rawTexts.get(result) : undefined;
  let text: string;
  if (raw !== undefined) text = raw;
  else {
    try {
      text = JSON.stringify(items);
    } catch {
      return filterList(view, request, kind, items, live);
    }
    if (typeof text !== "string" || text.length > MAX_LIST_MEMO_TEXT) return filterList(view, request, kind, items, live);
  }
  const who = whoOf(raw !== undefined, kind, request, drifted);
  let byDrift = memos.get(view);
  if (!byDrift) memos.set(view, (byDrift = new WeakMap()));
  let memo = byDrift.get(drifted);
  if (!memo) byDrift.set(drifted, (memo = { map: new Map(), order: [], chars: 0, encoded: false }));
  const hit = memo.map.get(who)?.get(text);
  if (hit) {
    const kept: T[] = [];
    for (const i of hit.kept) kept.push(items[i]!);
    const out = { kept, hidden: [...hit.hidden], changed: hit.changed.map((c) => ({ ...c })), record: copyRecord(hit.record) };
    entries.set(out, hit);
    return out;
  }
  const f = filterList(view, request, kind, items, live);
  // The kept items are a subsequence of the list (the same objects, in order): remembered by index.
  const kept: number[] = [];
  for (let i = 0, j = 0; i < items.length && j < f.kept.length; i++) {
    if (items[i] !== f.kept[j]) continue;
    kept.push(i);
    j++;
  }
  if (kept.length !== f.kept.length) return f;
  while (memo.order.length && (memo.order.length >= MAX_LIST_MEMO_ENTRIES || memo.chars + text.length > MAX_LIST_MEMO_CHARS)) {
    const [oldWho, oldText] = memo.order.shift()!;
    const inner = memo.map.get(oldWho);
    const old = inner?.get(oldText);
    inner?.delete(oldText);
    if (inner && !inner.size) memo.map.delete(oldWho);
    memo.chars -= oldText.length + (old ? answersBytes(old.answers) + (old.bytes?.length ?? 0) : 0);
  }
  let inner = memo.map.get(who);
  if (!inner) memo.map.set(who, (inner = new Map()));
  const entry: Remembered = { kept, hidden: [...f.hidden], changed: f.changed.map((c) => ({ ...c })), record: copyRecord(f.record), message: raw !== undefined, answers: [], memo, text };
  inner.set(text, entry);
  memo.order.push([who, text]);
  memo.chars += text.length;
  entries.set(f, entry);
  return f;
}

/** The memo's key of a caller's list (besides the bundle view, the drift set and the text). */
const whoOf = (message: boolean, kind: ListKind, request: { serverId: string; principal: DecidePrincipal }, drifted: ReadonlySet<string>): string =>
  `${message ? "message" : "items"} ${kind} ${callerOf(request, drifted)}`;
/** The part of that key all kinds share (`rememberedTexts` looks up the four kinds with one serialization). */
const callerOf = (request: { serverId: string; principal: DecidePrincipal }, drifted: ReadonlySet<string>): string => {
  const p = request.principal;
  return JSON.stringify([request.serverId, p.issuer, p.tenantId, p.user, p.client, p.scopes, p.groups, p.actors, p.iat, p.exp, drifted.size]);
};

/** An entry of the whole-list memo (opaque outside this module). */
export type ListMemoEntry = object;
/** The entry a `filterListRemembered()` answer came from or was stored in. */
const entries = new WeakMap<object, Remembered>();

/** The memo entry behind this answer of `filterListRemembered()`, when it was keyed by the upstream message's text. */
export function messageEntryOf(f: ListFiltered<unknown>): ListMemoEntry | undefined {
  const e = entries.get(f);
  return e?.message ? e : undefined;
}

/** Messages about to be serialized whose text is to be remembered as an answer of a memo entry (`serializeAnswer`). */
const toRemember = new WeakMap<object, { entry: Remembered; key: AnswerKey }>();

/**
 * Marks a screened message (`{ ...upstream message, result: screened result }`) as the answer to the
 * list of this memo entry (its result's one list filtered with the entry; nothing else of the message
 * screened). `serializeAnswer` then remembers its text around the id.
 */
export function noteListAnswer(message: object, entry: ListMemoEntry, key: AnswerKey): void {
  toRemember.set(message, { entry: entry as Remembered, key });
}

/**
 * Counters of this process: lists answered from a remembered serialized answer (`rememberedAnswer`), and
 * of those, SSE events found by comparing their undecoded bytes (agent/proxy.ts pipeSse).
 */
export const listMemoStats = { answersReused: 0, eventsMatched: 0 };

/** A fresh random id stands in for the real one while an answer is serialized: its JSON text is found once. */
const STAND_IN = `mandate-id-${randomBytes(16).toString("hex")}`;

/**
 * The JSON text of a screened upstream message (what `JSON.stringify` gives). A message marked with
 * `noteListAnswer` is serialized with a stand-in id instead, its text cut around the id's value and
 * remembered in the memo entry (UTF-8 encoded); the answer is then given as its parts, the two around
 * `JSON.stringify(id)` (JSON.stringify of an object writes each member's value where its key is,
 * independently of the other values).
 */
export function serializeAnswer(message: unknown): string | AnswerParts {
  const note = typeof message === "object" && message !== null ? toRemember.get(message) : undefined;
  if (!note || process.env.MANDATE_LIST_BYTES === "0") return JSON.stringify(message);
  toRemember.delete(message as object);
  const m = message as { id: string | number };
  const text = JSON.stringify({ ...m, id: STAND_IN });
  const mark = `"id":${JSON.stringify(STAND_IN)}`;
  const at = text.indexOf(mark);
  if (at < 0 || text.indexOf(mark, at + 1) >= 0) return JSON.stringify(message);
  const { entry, key } = note;
  const answer: Answer = { ...key, before: Buffer.from(text.slice(0, at + 5)), after: Buffer.from(text.slice(at + mark.length)) };
  const parts = { before: answer.before, id: JSON.stringify(m.id), after: answer.after };
  // Kept within the memo's bound (texts and answers together); an answer that does not fit is not remembered.
  const memo = entry.memo;
  const kept = entry.answers.filter((a) => !sameKey(a, key));
  kept.push(answer);
  const answers = kept.slice(-MAX_ANSWERS_PER_LIST);
  // The text's bytes, once, when its first answer is remembered (what `rememberedTexts` compares upstream bytes with).
  const bytes = entry.bytes === undefined ? encodedText(entry.text) : undefined;
  const delta = answersBytes(answers) - answersBytes(entry.answers) + (bytes?.length ?? 0);
  if (memo.chars + delta > MAX_LIST_MEMO_CHARS) return parts;
  entry.answers = answers;
  if (bytes !== undefined) entry.bytes = bytes;
  if (bytes) memo.encoded = true;
  memo.chars += delta;
  return parts;
}

/**
 * A remembered text's UTF-8 bytes, when they stand for it exactly: they decode back to the same text
 * (no lone surrogate) and it holds no line break (one SSE data line). Otherwise null: only the decoded
 * text is compared.
 */
function encodedText(text: string): Buffer | null {
  if (text.includes("\n") || text.includes("\r")) return null;
  const bytes = Buffer.from(text, "utf8");
  return bytes.toString("utf8") === text ? bytes : null;
}

/** An upstream list text the whole-list memo holds for a caller, with its UTF-8 bytes. */
export interface RememberedText {
  text: string;
  bytes: Buffer;
}

const LIST_KINDS: readonly ListKind[] = ["tools", "resources", "resourceTemplates", "prompts"];

/**
 * The upstream message texts (without their trailing id) the whole-list memo holds for this caller,
 * any list kind, under this bundle view and drift set, that have a remembered answer and bytes
 * (`encodedText`): what agent/proxy.ts pipeSse compares an SSE event's undecoded bytes with. A match
 * only names the text: the answer still comes from `rememberedAnswer` with that text and the id's
 * method, which checks everything again. `MANDATE_LIST_BYTES=0` or `MANDATE_LIST_MEMO=0`: none.
 */
export function rememberedTexts(view: DecisionView, request: { serverId: string; principal: DecidePrincipal }, live: { drifted?: ReadonlySet<string> }): RememberedText[] {
  if (process.env.MANDATE_LIST_BYTES === "0" || process.env.MANDATE_LIST_MEMO === "0") return [];
  const drifted = live.drifted ?? NO_DRIFT;
  const memo = memos.get(view)?.get(drifted);
  if (!memo?.encoded) return [];
  const out: RememberedText[] = [];
  const caller = callerOf(request, drifted);
  for (const kind of LIST_KINDS) {
    const inner = memo.map.get(`message ${kind} ${caller}`);
    if (inner) for (const e of inner.values()) if (e.message && e.bytes && e.answers.length) out.push({ text: e.text, bytes: e.bytes });
  }
  return out;
}

const answersBytes = (answers: readonly Answer[]): number => answers.reduce((n, a) => n + a.before.length + a.after.length, 0);

const sameKey = (a: AnswerKey, b: AnswerKey): boolean =>
  a.method === b.method && a.stateless === b.stateless && a.hints.has === b.hints.has && a.hints.upstream === b.hints.upstream && a.hints.out === b.hints.out;

/**
 * An upstream message's text cut before its trailing `"id":<id>}` member, when it ends so and the
 * member is the top-level object's own: the text before it ends with the `,` after another member
 * (a quote preceded by a `,` opens a string, here the key "id", never an escaped quote inside
 * one). `id` is the value's JSON text parsed alone (a string or number; anything else gives null).
 */
export function splitIdTail(text: string): { prefix: string; id: string | number } | null {
  const end = text.trimEnd();
  if (!end.endsWith("}")) return null;
  const at = end.lastIndexOf('"id":');
  if (at < 1 || end.charCodeAt(at - 1) !== 44 /* , */ || end.length - at > 4096) return null;
  let id: unknown;
  try {
    id = JSON.parse(end.slice(at + 5, -1));
  } catch {
    return null;
  }
  if (typeof id !== "string" && typeof id !== "number") return null;
  return { prefix: end.slice(0, at), id };
}

/**
 * The answer to a list message given as its text without the trailing id (`splitIdTail`), when the
 * whole-list memo holds that exact text for this caller, kind, bundle view and drift set (the key
 * `filterListRemembered()` uses; the text compared in full) and an answer to it was serialized for
 * this method and era with the same cache hints (`sameHints`): the same message screened in full
 * would filter to the same kept items and be serialized to the same text but for the id's value.
 * Gives the answer's parts with `id` in it, and the list's decision record and changed entries (as a
 * memo hit of `filterListRemembered()` gives them). Null: screen the message in full.
 * `MANDATE_LIST_BYTES=0` turns it off.
 */
export function rememberedAnswer(
  view: DecisionView,
  request: { serverId: string; principal: DecidePrincipal },
  kind: ListKind,
  tail: { prefix: string; id: string | number },
  live: { drifted?: ReadonlySet<string> },
  method: string,
  stateless: boolean,
  sameHints: (hints: AnswerKey["hints"]) => boolean,
): { answer: AnswerParts; record: ListFiltered<unknown>["record"]; changed: ListFiltered<unknown>["changed"] } | null {
  if (process.env.MANDATE_LIST_BYTES === "0" || process.env.MANDATE_LIST_MEMO === "0") return null;
  if (view.engine.readsClockOrAddress(request.serverId, request.principal.tenantId)) return null;
  const drifted = live.drifted ?? NO_DRIFT;
  const memo = memos.get(view)?.get(drifted);
  const entry = memo?.map.get(whoOf(true, kind, request, drifted))?.get(tail.prefix);
  if (!entry?.message) return null;
  const answer = entry.answers.find((a) => a.method === method && a.stateless === stateless && sameHints(a.hints));
  if (!answer) return null;
  listMemoStats.answersReused++;
  return { answer: { before: answer.before, id: JSON.stringify(tail.id), after: answer.after }, record: copyRecord(entry.record), changed: entry.changed.map((c) => ({ ...c })) };
}

const copyRecord = (r: ListFiltered<unknown>["record"]): ListFiltered<unknown>["record"] => ({ ...r, determining: [...r.determining], errors: [...r.errors], stepUpScopes: [...r.stepUpScopes] });
