import { cpSync, mkdirSync, readFileSync, rmSync, utimesSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { FileHashCache } from "../../../../coordinator/models/file-hash-cache";
import { chooseLibrary, openLibrary } from "../../../../coordinator/models/library-folder";
import { libraryModelInfo, scanLibrary } from "../../../../coordinator/models/library-scan";
import type { LibraryPack } from "../../../../coordinator/models/models-report";
import { scanModelPacks } from "../../../../farm-node/models/model-packs";
import { PackHasher } from "../../../../farm-node/models/pack-hash";
import { KilnError } from "../../../../shared/errors";
import { TINY_PACKS, writeTinyPacks } from "../../../fixtures/tiny-packs/write-tiny-packs";
import { tempDir } from "../../../support/temp-dir";

let dir: string;
let library: string;
let cacheFile: string;

beforeEach(() => {
  dir = tempDir("kiln-library-");
  library = join(dir, "models");
  cacheFile = join(dir, "data", "library-hashes.json");
  mkdirSync(join(dir, "data"));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const scan = () => scanLibrary(library, new FileHashCache(cacheFile));

describe("scanLibrary", () => {
  it("names each tiny pack, its kind, and the same content hash a node computes for the same bytes", async () => {
    writeTinyPacks(library);
    const packs = await scan();
    expect(packs.map((p) => [p.folder, p.name, p.kind, p.status.state])).toEqual([
      [TINY_PACKS.flow, TINY_PACKS.flow, "flow", "ok"],
      [TINY_PACKS.sd, TINY_PACKS.sd, "sd", "ok"],
      [TINY_PACKS.sdInpaint, TINY_PACKS.sdInpaint, "sd", "ok"],
      [TINY_PACKS.sdxl, TINY_PACKS.sdxl, "sdxl", "ok"],
      [TINY_PACKS.upscaler, TINY_PACKS.upscaler, "upscaler", "ok"],
    ]);
    const onNode = await scanModelPacks(library, new PackHasher(join(dir, "node-hashes.json")));
    for (const p of packs) {
      const there = onNode.find((e) => e.info.name === p.name);
      expect(p.hash).toMatch(/^[0-9a-f]{64}$/);
      expect(p.hash).toBe(there?.info.hash);
      expect(p.sizeBytes).toBe(there?.info.sizeBytes);
      expect(p.files).toBeGreaterThan(p.kind === "upscaler" ? 0 : 3);
    }
  });

  it("describes each pack (defaults, limits, sampler) exactly as a node advertises it once it has the pack", async () => {
    writeTinyPacks(library);
    const packs = await scan();
    const onNode = await scanModelPacks(library, new PackHasher(join(dir, "node-hashes.json")));
    for (const p of packs) {
      const there = onNode.find((e) => e.info.name === p.name)?.info;
      // An upscaler exported as is tells its factor only when run, which a node does and the app does not.
      const expected = p.kind === "upscaler" ? { ...there, scale: undefined } : there;
      expect(libraryModelInfo(join(library, p.folder), p), p.name).toEqual(expected);
    }
    // Turbo told by the name: the SDXL-Turbo pack's single step without guidance.
    const sdxl = packs.find((p) => p.folder === TINY_PACKS.sdxl) as LibraryPack;
    expect(libraryModelInfo(join(library, TINY_PACKS.sdxl), sdxl)).toMatchObject({
      defaultSteps: 1,
      defaultGuidance: 0,
    });
  });

  it("takes the name from kiln-model.json when it sets one", async () => {
    const { flow } = writeTinyPacks(library);
    const manifest = JSON.parse(readFileSync(join(flow, "kiln-model.json"), "utf8"));
    writeFileSync(join(flow, "kiln-model.json"), JSON.stringify({ ...manifest, name: "z-image-turbo" }));
    const packs = await scan();
    expect(packs.find((p) => p.folder === TINY_PACKS.flow)?.name).toBe("z-image-turbo");
  });

  it("hashes a file again only when its size or modification time changed, through a cache in the data dir", async () => {
    const { sd } = writeTinyPacks(library);
    const first = new FileHashCache(cacheFile);
    const before = await scanLibrary(library, first);
    expect(first.hashedFiles).toBeGreaterThan(0);
    expect(JSON.parse(readFileSync(cacheFile, "utf8"))).toBeTypeOf("object");

    const again = new FileHashCache(cacheFile);
    expect(await scanLibrary(library, again)).toEqual(before);
    expect(again.hashedFiles).toBe(0);

    // Same size, other bytes, a new mtime: read again, and the pack's hash moves.
    const file = join(sd, "scheduler", "scheduler_config.json");
    const text = readFileSync(file, "utf8");
    writeFileSync(file, text.replace("PNDMScheduler", "PNDMSchedulex"));
    utimesSync(file, new Date(), new Date(Date.now() + 5000));
    const third = new FileHashCache(cacheFile);
    const after = await scanLibrary(library, third);
    expect(third.hashedFiles).toBe(1);
    expect(after.find((p) => p.name === TINY_PACKS.sd)?.hash).not.toBe(
      before.find((p) => p.name === TINY_PACKS.sd)?.hash,
    );
  });

  it("a damaged cache only costs a re-hash", async () => {
    writeTinyPacks(library);
    const before = await scan();
    writeFileSync(cacheFile, "{ not json");
    const cache = new FileHashCache(cacheFile);
    expect(await scanLibrary(library, cache)).toEqual(before);
    expect(cache.hashedFiles).toBeGreaterThan(0);
  });

  it("leaves dot-files, dot-folders and other frameworks' weights out of the hash, as a node does", async () => {
    const { sd } = writeTinyPacks(library);
    const before = (await scan()).find((p) => p.name === TINY_PACKS.sd);
    writeFileSync(join(sd, ".DS_Store"), "clutter");
    mkdirSync(join(sd, ".cache"));
    writeFileSync(join(sd, ".cache", "x"), "clutter");
    writeFileSync(join(sd, "unet", "diffusion_pytorch_model.safetensors"), "weights Kiln never reads");
    writeFileSync(join(sd, "README.md"), "# card");
    const after = (await scan()).find((p) => p.name === TINY_PACKS.sd);
    expect(after).toEqual(before);
  });

  it("lists a folder that is no pack as unreadable, with the reason, and never fails the scan", async () => {
    writeTinyPacks(library);
    mkdirSync(join(library, "notes"));
    writeFileSync(join(library, "notes", "todo.txt"), "export sdxl");
    const half = join(library, "half-copied-sd");
    mkdirSync(half);
    writeFileSync(join(half, "model_index.json"), JSON.stringify({ _class_name: "StableDiffusionPipeline" }));
    mkdirSync(join(library, "dit"));
    writeFileSync(join(library, "dit", "model_index.json"), JSON.stringify({ _class_name: "ZImagePipeline" }));
    mkdirSync(join(library, "dit", "transformer"));
    mkdirSync(join(library, "bad-manifest"));
    writeFileSync(join(library, "bad-manifest", "kiln-model.json"), "{ nope");
    mkdirSync(join(library, "old-manifest"));
    writeFileSync(join(library, "old-manifest", "kiln-model.json"), JSON.stringify({ kiln: 2, kind: "sd" }));
    writeFileSync(join(library, "stray-file.onnx"), "not a folder");
    mkdirSync(join(library, ".trash"));

    const packs = await scan();
    const byFolder = Object.fromEntries(packs.map((p) => [p.folder, p]));
    expect(Object.keys(byFolder).sort()).toEqual(
      [
        "bad-manifest",
        "dit",
        "half-copied-sd",
        "notes",
        "old-manifest",
        TINY_PACKS.flow,
        TINY_PACKS.sd,
        TINY_PACKS.sdInpaint,
        TINY_PACKS.sdxl,
        TINY_PACKS.upscaler,
      ].sort(),
    );
    const reason = (folder: string) => {
      const status = byFolder[folder]?.status;
      return status?.state === "unreadable" ? status.reason : "ok";
    };
    expect(reason("notes")).toMatch(/no kiln-model\.json and no model_index\.json/);
    expect(reason("half-copied-sd")).toMatch(/text_encoder\/ is missing/);
    expect(reason("dit")).toMatch(/transformer.*kiln-model\.json/);
    expect(reason("bad-manifest")).toMatch(/kiln-model\.json is not valid JSON/);
    expect(reason("old-manifest")).toMatch(/kiln-model\.json: kiln/);
    expect(byFolder.notes).toMatchObject({ hash: "", kind: "unknown", files: 1, sizeBytes: 11 });
    expect(byFolder["half-copied-sd"]?.kind).toBe("sd");
  });

  it("refuses a second pack under a name already taken, and the built-in demo's name", async () => {
    const { flow } = writeTinyPacks(library);
    cpSync(flow, join(library, "zz-copy"), { recursive: true });
    const manifest = JSON.parse(readFileSync(join(library, TINY_PACKS.flow, "kiln-model.json"), "utf8"));
    writeFileSync(
      join(library, TINY_PACKS.flow, "kiln-model.json"),
      JSON.stringify({ ...manifest, name: "kiln-demo" }),
    );
    writeFileSync(join(library, "zz-copy", "kiln-model.json"), JSON.stringify({ ...manifest, name: TINY_PACKS.sd }));
    const packs = await scan();
    const status = (folder: string) => packs.find((p) => p.folder === folder)?.status;
    expect(status(TINY_PACKS.sd)).toEqual({ state: "ok" });
    expect(status("zz-copy")).toEqual({
      state: "unreadable",
      reason: expect.stringMatching(/already called "tiny-sd"/),
    });
    expect(status(TINY_PACKS.flow)).toEqual({ state: "unreadable", reason: expect.stringMatching(/built-in/) });
  });
});

describe("the library folder", () => {
  const home = "/home/ada";

  it("is --models, else $KILN_MODELS, else kiln/models under XDG_DATA_HOME or ~/.local/share", () => {
    expect(chooseLibrary("rel/lib", { KILN_MODELS: "/env" }, home).from).toBe("flag");
    expect(chooseLibrary(undefined, { KILN_MODELS: "/env" }, home)).toEqual({ dir: "/env", from: "env" });
    expect(chooseLibrary(undefined, { XDG_DATA_HOME: "/xdg" }, home)).toEqual({
      dir: "/xdg/kiln/models",
      from: "default",
    });
    expect(chooseLibrary(undefined, {}, home)).toEqual({ dir: "/home/ada/.local/share/kiln/models", from: "default" });
    expect(chooseLibrary(undefined, { KILN_MODELS: "" }, home).from).toBe("default");
  });

  it("creates the default folder, refuses a missing one someone named, saying how to fix it", () => {
    const created = openLibrary({ dir: join(dir, "share", "kiln", "models"), from: "default" });
    expect(created).toBe(join(dir, "share", "kiln", "models"));
    expect(openLibrary({ dir: created, from: "default" })).toBe(created);

    const missing = join(dir, "nope");
    const refuse = (from: "flag" | "env") => {
      try {
        openLibrary({ dir: missing, from });
      } catch (error) {
        expect(error).toBeInstanceOf(KilnError);
        expect((error as KilnError).code).toBe("E_BAD_REQUEST");
        return (error as Error).message;
      }
      throw new Error("did not refuse");
    };
    expect(refuse("flag")).toMatch(new RegExp(`${missing}.*does not exist.*--models`));
    expect(refuse("env")).toMatch(/KILN_MODELS/);
    writeFileSync(missing, "a file");
    expect(refuse("flag")).toMatch(/not a folder/);
  });
});
