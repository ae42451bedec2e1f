#!/usr/bin/env node
// The `mandate-agent` command: runs agent/main.ts through tsx's loader.
import { register } from "tsx/esm/api";

register();
const { main } = await import("./main.ts");
await main();
