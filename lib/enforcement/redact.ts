/**
 * One redaction path for every URL that reaches a log line or an error: a
 * vault secret may sit in a query parameter (api_key placement "query") or in
 * userinfo, so query values and userinfo never leave this function. Pure.
 */

/** The URL with userinfo dropped and every query value replaced by `REDACTED` (names kept, to tell parameters apart); the fragment is dropped. Unparseable input gives a placeholder, never the input. */
export function redactUrl(raw: string | URL): string {
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    return "<invalid URL>";
  }
  const names = [...u.searchParams.keys()];
  const query = names.length ? `?${names.map((n) => `${encodeURIComponent(n)}=REDACTED`).join("&")}` : "";
  return `${u.protocol}//${u.host}${u.pathname}${query}`;
}

/** Every absolute http(s) URL inside a message, redacted (for messages from libraries that may quote the URL they were given). */
export function redactUrlsIn(message: string): string {
  return message.replace(/\bhttps?:\/\/[^\s"'<>`]+/gi, (m) => redactUrl(m));
}
