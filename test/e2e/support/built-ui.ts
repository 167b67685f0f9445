import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("../../../", import.meta.url));
/** What an `electron-vite build` of the UI reads: its sources, the code it shares, its config and locked packages. */
const INPUTS = [
  "renderer",
  "shared",
  "electron",
  "electron.vite.config.ts",
  "tsconfig.json",
  "tsconfig.web.json",
  "package-lock.json",
];

/**
 * The UI built from the sources as they are now, into a temporary folder named by their hash: built at most once
 * per state of the sources, by whichever test file asks first (another one asking at the same time builds too, and
 * the first to finish wins), never the checkout's own out/, which may be older than the sources it tests.
 * Returns the folder to serve (its renderer/).
 */
export function builtRenderer(): string {
  const dir = join(tmpdir(), `kiln-e2e-ui-${sourcesHash()}`);
  const renderer = join(dir, "renderer");
  if (existsSync(join(renderer, "index.html"))) return renderer;
  const building = mkdtempSync(join(tmpdir(), "kiln-e2e-ui-building-"));
  execFileSync(
    process.execPath,
    [
      join(ROOT, "node_modules/electron-vite/bin/electron-vite.js"),
      "build",
      "--outDir",
      building,
      "--logLevel",
      "warn",
    ],
    { cwd: ROOT, stdio: "inherit" },
  );
  try {
    renameSync(building, dir);
  } catch (error) {
    // Another test file's build of the same sources got there first: use that one.
    rmSync(building, { recursive: true, force: true });
    if (!existsSync(join(renderer, "index.html"))) throw error;
  }
  return renderer;
}

function sourcesHash(): string {
  const hash = createHash("sha256");
  for (const input of INPUTS) {
    const path = join(ROOT, input);
    if (!existsSync(path)) continue;
    const files = statSync(path).isDirectory()
      ? (readdirSync(path, { recursive: true, withFileTypes: true }) as import("node:fs").Dirent[])
          .filter((entry) => entry.isFile())
          .map((entry) => join(entry.parentPath, entry.name))
      : [path];
    for (const file of files.sort()) hash.update(relative(ROOT, file)).update("\0").update(readFileSync(file));
  }
  return hash.digest("hex").slice(0, 16);
}
