#!/usr/bin/env node
// Runs the TypeScript sources directly through tsx: no build step between a checkout and the CLI.
import { register } from "tsx/esm/api";

register();
await import("../coordinator/cli/kiln.ts");
