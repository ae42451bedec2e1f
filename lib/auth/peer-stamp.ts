import http, { type IncomingMessage } from "node:http";
import https from "node:https";
import { PEER_ADDRESS_HEADER } from "./client-address";

const installed = Symbol.for("mandate.peerAddressStamp");

/** Overwrites the peer-address header with the socket's address: a client-sent copy never survives. */
export function stampPeerAddress(req: IncomingMessage): void {
  delete req.headers[PEER_ADDRESS_HEADER];
  const addr = req.socket?.remoteAddress;
  if (addr) req.headers[PEER_ADDRESS_HEADER] = addr;
  // The raw header list is what some code copies from; drop the client's copy there too.
  const raw = req.rawHeaders;
  for (let i = raw.length - 2; i >= 0; i -= 2) if (raw[i]!.toLowerCase() === PEER_ADDRESS_HEADER) raw.splice(i, 2);
}

/**
 * Makes every HTTP(S) server of this process stamp the socket's peer address
 * into `x-mandate-peer-address` before its request listener runs. Next.js 16
 * gives route handlers no access to the socket, and `next start` creates its
 * server in this process (its `request` event goes through `emit`), so this is
 * the one place the real address can be recorded. Idempotent.
 */
export function installPeerAddressStamp(): void {
  for (const proto of [http.Server.prototype, https.Server.prototype] as unknown as { emit: (...a: unknown[]) => boolean; [installed]?: true }[]) {
    if (Object.prototype.hasOwnProperty.call(proto, installed)) continue;
    const emit = proto.emit;
    proto.emit = function (this: unknown, event: unknown, ...args: unknown[]) {
      if (event === "request") stampPeerAddress(args[0] as IncomingMessage);
      return emit.call(this, event, ...args);
    };
    Object.defineProperty(proto, installed, { value: true });
  }
}
