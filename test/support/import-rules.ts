import { builtinModules } from "node:module";
import { dirname, join, normalize } from "node:path";

/** The architecture's import rules from the design brief, as data. */
const ROOMS = ["shared", "farm-node", "coordinator", "electron", "renderer"] as const;
type Room = (typeof ROOMS)[number];

const MAY_IMPORT: Record<Room, readonly Room[]> = {
  shared: ["shared"],
  "farm-node": ["farm-node", "shared"],
  coordinator: ["coordinator", "shared"],
  electron: ["electron", "coordinator", "shared"],
  renderer: ["renderer", "shared"],
};

/** Packages each room may use; `shared` is pure protocol code, `renderer` runs in a browser. */
const PACKAGE_RULES: Partial<Record<Room, (pkg: string) => string | null>> = {
  shared: (pkg) => (pkg === "zod" ? null : "shared/ may only import zod (no I/O, no Node or DOM APIs)"),
  renderer: (pkg) => (isNodeBuiltin(pkg) ? "renderer/ runs in a browser and may not import Node built-ins" : null),
};

function isNodeBuiltin(pkg: string): boolean {
  return pkg.startsWith("node:") || builtinModules.includes(pkg);
}

export interface SourceFile {
  /** Path relative to the repository root, with forward slashes. */
  path: string;
  text: string;
}

const SPECIFIER =
  /(?:import|export)\s[^'"]*?from\s*["']([^"']+)["']|import\(\s*["']([^"']+)["']\s*\)|require\(\s*["']([^"']+)["']\s*\)|^\s*import\s*["']([^"']+)["']/gm;

export function importSpecifiers(text: string): string[] {
  return [...text.matchAll(SPECIFIER)].map((m) => (m[1] ?? m[2] ?? m[3] ?? m[4]) as string);
}

function roomOf(path: string): Room | null {
  const top = path.split("/")[0] as Room;
  return ROOMS.includes(top) ? top : null;
}

/** Every import that breaks a rule, as `file: message`. */
export function importViolations(files: SourceFile[]): string[] {
  const out: string[] = [];
  for (const file of files) {
    const room = roomOf(file.path);
    if (!room) continue;
    for (const spec of importSpecifiers(file.text)) {
      if (spec.startsWith(".")) {
        const target = normalize(join(dirname(file.path), spec)).replaceAll("\\", "/");
        const targetRoom = roomOf(target);
        if (targetRoom === null && !target.startsWith("package.json")) {
          out.push(`${file.path}: imports ${spec}, outside the project's rooms`);
        } else if (targetRoom !== null && !MAY_IMPORT[room].includes(targetRoom)) {
          out.push(`${file.path}: ${room}/ may not import ${targetRoom}/ (${spec})`);
        }
        continue;
      }
      if (spec === "electron" && room !== "electron") out.push(`${file.path}: only electron/ may import electron`);
      const problem = PACKAGE_RULES[room]?.(spec);
      if (problem) out.push(`${file.path}: ${problem} (${spec})`);
    }
  }
  return out;
}
