// Runs once when the server starts: open the database (applying migrations)
// and create the first owner, so a misconfiguration fails at start, not at first use.
export async function register() {
  if (process.env.NEXT_RUNTIME !== "nodejs") return;
  const { bootstrap } = await import("./lib/bootstrap");
  await bootstrap();
}
