import { createRequire } from "node:module";

/** The package version, reported by /health and /v1/node. */
export const KILN_VERSION: string = createRequire(import.meta.url)("../package.json").version;
