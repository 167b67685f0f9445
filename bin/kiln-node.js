#!/usr/bin/env node
// Runs the TypeScript sources directly through tsx, so there is no build step
// between a checkout and a running node.
import { register } from "tsx/esm/api";

register();
await import("../farm-node/cli.ts");
