/**
 * npm run gpu:check:bundle -- DIR [--no-vulkan]
 *
 * Writes a self-contained folder for checking Kiln on a bare Linux x86-64
 * machine with NVIDIA GPUs and no network: this machine's Node binary, the
 * node daemon's sources with exactly the production packages they import
 * (onnxruntime-node cut to its linux/x64 part), Debian's Vulkan loader (the
 * WebGPU provider runs over it; its .deb is unpacked into the folder, never
 * into /), the tiny model packs, the check (gpu-check.ts) and DIR/run.sh,
 * which prints the check's JSON. Pack it with `tar -cJf` to carry it.
 */
import { execFileSync } from "node:child_process";
import { chmodSync, cpSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { dirname, join, relative, resolve, sep } from "node:path";
import { fileURLToPath } from "node:url";
import { writeTinyPacks } from "../../test/fixtures/tiny-packs/write-tiny-packs";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
/** Folders the node loads files of at run time (workers, kernels, vocabularies), whole. */
const FOLDERS = ["farm-node", "shared"];
/** The check and the node's launcher; the files they import are followed from here. */
const ENTRIES = ["bin/kiln-node.js", "build/gpu-check/gpu-check.ts"];
/** Parts of packages the check never loads: other platforms' binaries. */
const LEFT_OUT = [
  join("onnxruntime-node", "bin", "napi-v6", "darwin"),
  join("onnxruntime-node", "bin", "napi-v6", "win32"),
  join("onnxruntime-node", "bin", "napi-v6", "linux", "arm64"),
];
/** The loader the WebGPU provider (Dawn) opens; the driver's ICD comes with the NVIDIA driver. */
const VULKAN_DEBS = ["libvulkan1"];

const RUN_SH = `#!/bin/sh
# Kiln GPU check: starts kiln-node --devices all on this bundle's tiny packs and
# prints one JSON line (per device: backend, nvidia-smi readings, kiln-demo
# images/s at 512x512, tiny SD ms per image). Needs no network and installs
# nothing: Node, the packages and the Vulkan loader are in this folder.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
if ! ldconfig -p 2>/dev/null | grep -q 'libvulkan.so.1 '; then
  if ls "$here"/vulkan/*.deb >/dev/null 2>&1; then
    mkdir -p "$here/vulkan/root"
    for deb in "$here"/vulkan/*.deb; do dpkg -x "$deb" "$here/vulkan/root"; done
    export LD_LIBRARY_PATH="$here/vulkan/root/usr/lib/x86_64-linux-gnu\${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  fi
fi
icd=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
if [ -z "\${VK_DRIVER_FILES:-}" ] && [ -f "$icd" ]; then export VK_DRIVER_FILES="$icd"; fi
export PATH="$here/node/bin:$PATH"
cd "$here"
exec node --import tsx build/gpu-check/gpu-check.ts "$@"
`;

function usage(message: string): never {
  process.stderr.write(`gpu:check:bundle: ${message}\nusage: npm run gpu:check:bundle -- DIR [--no-vulkan]\n`);
  process.exit(2);
}

/** Every file of ours `entries` import, themselves included, following relative imports, static and `import("…")`. */
function sourceClosure(entries: string[]): string[] {
  const files = new Set<string>();
  const queue = entries.map((e) => join(ROOT, e));
  while (queue.length > 0) {
    const file = queue.shift() as string;
    if (files.has(file)) continue;
    files.add(file);
    for (const m of readFileSync(file, "utf8").matchAll(/(?:(?:^|\s)from\s*|\bimport\(\s*)"(\.{1,2}\/[^"\n]+)"/gm)) {
      const base = resolve(dirname(file), m[1] as string);
      const found = [base, `${base}.ts`, `${base}.js`, join(base, "index.ts")].find(
        (c) => existsSync(c) && statSync(c).isFile(),
      );
      if (!found) throw new Error(`${relative(ROOT, file)} imports ${m[1]}, which is not there`);
      queue.push(found);
    }
  }
  return [...files].map((f) => relative(ROOT, f));
}

/**
 * Package names a source tree imports (bare specifiers, node: left out): every static import, and the production
 * dependencies it loads with `import("…")` where it needs them (a test runner's conditional import is not followed).
 */
function importedPackages(paths: string[]): Set<string> {
  const names = new Set<string>();
  const { dependencies } = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as {
    dependencies: Record<string, string>;
  };
  const visit = (path: string) => {
    if (statSync(path).isDirectory()) {
      for (const entry of readdirSync(path)) visit(join(path, entry));
      return;
    }
    if (!/\.(ts|js|mjs)$/.test(path)) return;
    const text = readFileSync(path, "utf8");
    for (const m of text.matchAll(/(?:(?:^|\s)from\s*|\b(import)\(\s*)"(@?[a-z0-9][\w.-]*(?:\/[\w.@-]+)*)"/gm)) {
      const spec = m[2] as string;
      if (spec.startsWith("node:")) continue;
      const parts = spec.split("/");
      const name = spec.startsWith("@") ? `${parts[0]}/${parts[1]}` : (parts[0] as string);
      if (m[1] === undefined || name in dependencies) names.add(name);
    }
  };
  for (const p of paths) visit(join(ROOT, p));
  return names;
}

/** Folders of every package `names` need, found as Node would from `from`, dependencies followed. */
function packageClosure(names: Iterable<string>): Set<string> {
  const dirs = new Set<string>();
  const queue: Array<{ name: string; from: string; optional: boolean }> = [...names].map((name) => ({
    name,
    from: ROOT,
    optional: false,
  }));
  while (queue.length > 0) {
    const { name, from, optional } = queue.shift() as (typeof queue)[number];
    const dir = packageDir(name, from);
    if (!dir) {
      if (optional) continue;
      throw new Error(
        `package ${name} (needed from ${relative(ROOT, from) || "the project"}) is not installed: run npm ci`,
      );
    }
    if (dirs.has(dir)) continue;
    dirs.add(dir);
    const manifest = JSON.parse(readFileSync(join(dir, "package.json"), "utf8")) as {
      dependencies?: Record<string, string>;
      optionalDependencies?: Record<string, string>;
    };
    for (const dep of Object.keys(manifest.dependencies ?? {})) queue.push({ name: dep, from: dir, optional: false });
    for (const dep of Object.keys(manifest.optionalDependencies ?? {}))
      queue.push({ name: dep, from: dir, optional: true });
  }
  return dirs;
}

/** A package's folder as Node's resolution finds it from `from` (nested node_modules first). */
function packageDir(name: string, from: string): string | null {
  for (let at = from; ; at = dirname(at)) {
    const candidate = join(at, "node_modules", name);
    if (existsSync(join(candidate, "package.json"))) return candidate;
    if (dirname(at) === at) return null;
  }
}

function main(): void {
  const args = process.argv.slice(2);
  const target = args.find((a) => !a.startsWith("--"));
  if (!target) usage("name the folder to write");
  if (process.platform !== "linux" || process.arch !== "x64")
    usage(`the bundle carries this machine's Node, which is ${process.platform}/${process.arch}; make it on linux/x64`);
  const dir = resolve(target);
  if (existsSync(dir) && readdirSync(dir).length > 0) usage(`${dir} is not empty; name a new or empty folder`);
  mkdirSync(dir, { recursive: true });

  mkdirSync(join(dir, "node", "bin"), { recursive: true });
  cpSync(process.execPath, join(dir, "node", "bin", "node"));
  const sources = [...FOLDERS, ...sourceClosure(ENTRIES)];
  for (const path of sources) cpSync(join(ROOT, path), join(dir, path), { recursive: true });
  // The node reports the project's version (farm-node/version.ts reads it here).
  const { version } = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { version: string };
  writeFileSync(
    join(dir, "package.json"),
    `${JSON.stringify({ name: "kiln-gpu-check", version, private: true, type: "module" }, null, 2)}\n`,
  );

  const packages = packageClosure(importedPackages(sources));
  for (const from of packages) {
    const inside = relative(ROOT, from);
    cpSync(from, join(dir, inside), {
      recursive: true,
      filter: (src) => !LEFT_OUT.some((cut) => src.split(sep).join(sep).includes(join("node_modules", cut))),
    });
  }

  writeTinyPacks(join(dir, "packs"));

  if (!args.includes("--no-vulkan")) {
    mkdirSync(join(dir, "vulkan"));
    try {
      execFileSync("apt-get", ["download", ...VULKAN_DEBS], { cwd: join(dir, "vulkan"), stdio: "pipe" });
    } catch (error) {
      usage(
        `could not download ${VULKAN_DEBS.join(", ")} with apt-get (${(error as Error).message.split("\n")[0]}); ` +
          "run `apt-get update` first, or pass --no-vulkan for a bundle that relies on the machine's own loader",
      );
    }
  }

  writeFileSync(join(dir, "run.sh"), RUN_SH);
  chmodSync(join(dir, "run.sh"), 0o755);
  const mb = Number(execFileSync("du", ["-sm", dir], { encoding: "utf8" }).split("\t")[0]);
  process.stdout.write(
    `wrote ${dir}: ${packages.size} packages, ${mb} MB; run ${join(dir, "run.sh")} on the GPU machine ` +
      `(carry it as: tar -C ${dirname(dir)} -cJf kiln-gpu-check.tar.xz ${relative(dirname(dir), dir)})\n`,
  );
}

main();
