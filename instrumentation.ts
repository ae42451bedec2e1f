// Runs once when the server starts: open the database (applying migrations)
// and create the first owner, so a misconfiguration fails at start, not at first use.
export async function register() {
  if (process.env.NEXT_RUNTIME !== "nodejs") return;
  // Record each request's TCP peer address where route handlers can read it (sign-in throttling).
  const { installPeerAddressStamp } = await import("./lib/auth/peer-stamp");
  installPeerAddressStamp();
  const { bootstrap } = await import("./lib/bootstrap");
  await bootstrap();
}
