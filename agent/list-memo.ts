import { filterList, type DecidePrincipal, type DecisionView, type ListFiltered, type ListKind } from "@/lib/enforcement/decide";

/** Most lists remembered per (bundle view, drift set); the oldest is forgotten first. */
export const MAX_LIST_MEMO_ENTRIES = 64;
/** Most characters of remembered list text per (bundle view, drift set) … */
export const MAX_LIST_MEMO_CHARS = 16_000_000;
/** … and of one list: a longer one is filtered afresh each time. */
export const MAX_LIST_MEMO_TEXT = 4_000_000;

interface Remembered {
  /** Indexes of the kept items, in order. */
  kept: number[];
  hidden: string[];
  changed: ListFiltered<unknown>["changed"];
  record: ListFiltered<unknown>["record"];
}

interface Memo {
  /** Caller key → exact text of what was filtered → the answer (two levels: the long text is never copied into a key). */
  map: Map<string, Map<string, Remembered>>;
  /** Insertion order of (caller key, text), for the bounds. */
  order: [string, string][];
  chars: number;
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
  const who = JSON.stringify([raw !== undefined ? "message" : "items", kind, request.serverId, p.issuer, p.tenantId, p.user, p.client, p.scopes, p.groups, p.actors, p.iat, p.exp, drifted.size]);
  let byDrift = memos.get(view);
  if (!byDrift) memos.set(view, (byDrift = new WeakMap()));
  let memo = byDrift.get(drifted);
  if (!memo) byDrift.set(drifted, (memo = { map: new Map(), order: [], chars: 0 }));
  const hit = memo.map.get(who)?.get(text);
  if (hit) {
    const kept: T[] = [];
    for (const i of hit.kept) kept.push(items[i]!);
    return { kept, hidden: [...hit.hidden], changed: hit.changed.map((c) => ({ ...c })), record: copyRecord(hit.record) };
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
    inner?.delete(oldText);
    if (inner && !inner.size) memo.map.delete(oldWho);
    memo.chars -= oldText.length;
  }
  let inner = memo.map.get(who);
  if (!inner) memo.map.set(who, (inner = new Map()));
  inner.set(text, { kept, hidden: [...f.hidden], changed: f.changed.map((c) => ({ ...c })), record: copyRecord(f.record) });
  memo.order.push([who, text]);
  memo.chars += text.length;
  return f;
}

const copyRecord = (r: ListFiltered<unknown>["record"]): ListFiltered<unknown>["record"] => ({ ...r, determining: [...r.determining], errors: [...r.errors], stepUpScopes: [...r.stepUpScopes] });
