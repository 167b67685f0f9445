import { readdirSync, readFileSync } from "node:fs";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { importSpecifiers, importViolations, type SourceFile } from "../../support/import-rules";

const ROOT = fileURLToPath(new URL("../../../", import.meta.url));

function sources(dir: string): SourceFile[] {
  const out: SourceFile[] = [];
  for (const entry of readdirSync(join(ROOT, dir), { withFileTypes: true, recursive: true })) {
    if (!entry.isFile() || !/\.(ts|tsx|js|mjs|cjs)$/.test(entry.name)) continue;
    const full = join(entry.parentPath, entry.name);
    out.push({ path: relative(ROOT, full).replaceAll("\\", "/"), text: readFileSync(full, "utf8") });
  }
  return out;
}

describe("import rules of the design brief", () => {
  it("hold for the whole tree", () => {
    const files = ["shared", "farm-node", "coordinator", "electron", "renderer"].flatMap(sources);
    expect(files.length).toBeGreaterThan(10);
    expect(importViolations(files)).toEqual([]);
  });

  it("catch each kind of violation (the checker itself can fail)", () => {
    const violations = importViolations([
      { path: "farm-node/a.ts", text: 'import { x } from "../coordinator/b";' },
      { path: "coordinator/a.ts", text: 'import type { Y } from "../farm-node/y";' },
      { path: "shared/a.ts", text: 'import { readFileSync } from "node:fs";' },
      { path: "renderer/a.tsx", text: 'const fs = require("fs");' },
      { path: "coordinator/b.ts", text: 'import { app } from "electron";' },
      { path: "renderer/c.ts", text: 'export { z } from "../farm-node/z";' },
      { path: "electron/main.ts", text: 'import { app } from "electron";\nimport { C } from "../coordinator/c";' },
    ]);
    expect(violations).toEqual([
      "farm-node/a.ts: farm-node/ may not import coordinator/ (../coordinator/b)",
      "coordinator/a.ts: coordinator/ may not import farm-node/ (../farm-node/y)",
      "shared/a.ts: shared/ may only import zod (no I/O, no Node or DOM APIs) (node:fs)",
      "renderer/a.tsx: renderer/ runs in a browser and may not import Node built-ins (fs)",
      "coordinator/b.ts: only electron/ may import electron",
      "renderer/c.ts: renderer/ may not import farm-node/ (../farm-node/z)",
    ]);
  });

  it("finds static, dynamic, re-export, side-effect and require imports", () => {
    const text = [
      'import a from "a";',
      'import type { B } from "b";',
      'export * from "c";',
      'const d = await import("d");',
      'const e = require("e");',
      'import "f";',
    ].join("\n");
    expect(importSpecifiers(text)).toEqual(["a", "b", "c", "d", "e", "f"]);
  });
});
