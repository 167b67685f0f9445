import { createHash } from "node:crypto";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { PackHasher } from "../../../farm-node/models/pack-hash";
import { isPackFileName, packHashInput } from "../../../shared/pack-files";

const sha = (text: string) => createHash("sha256").update(text).digest("hex");
let dir: string | undefined;

afterEach(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
  dir = undefined;
});

describe("a pack's content, as a node and a studio library both name it", () => {
  it("counts the files a pack runs from, not other frameworks' weights, cards, pictures or dot-files", () => {
    for (const name of ["model.onnx", "model.onnx_data", "tokenizer.json", "kiln-model.json", "vocab.txt"])
      expect(isPackFileName(name), name).toBe(true);
    for (const name of ["model.safetensors", "pytorch_model.bin", "README.md", "sample.PNG", ".DS_Store", ".git"])
      expect(isPackFileName(name), name).toBe(false);
  });

  it("hashes the same text whatever order the files are listed in", () => {
    const files = [
      { path: "unet/model.onnx", sha256: sha("u") },
      { path: "text_encoder/model.onnx", sha256: sha("t") },
      { path: "kiln-model.json", sha256: sha("m") },
    ];
    const text = packHashInput(files);
    expect(text).toBe(
      `kiln-model.json ${sha("m")}\ntext_encoder/model.onnx ${sha("t")}\nunet/model.onnx ${sha("u")}\n`,
    );
    expect(packHashInput([...files].reverse())).toBe(text);
  });

  it("is the node's pack hash: sha256 of that text over its files' own digests", async () => {
    const root = mkdtempSync(join(tmpdir(), "kiln-pack-files-"));
    dir = root;
    const pack = join(root, "pack");
    mkdirSync(join(pack, "unet"), { recursive: true });
    writeFileSync(join(pack, "kiln-model.json"), "{}");
    writeFileSync(join(pack, "unet", "model.onnx"), "weights");
    writeFileSync(join(pack, "unet", "model.safetensors"), "other framework");
    writeFileSync(join(pack, "README.md"), "card");
    const digest = await new PackHasher(join(root, "hashes.json")).digest(pack);
    expect(digest.files).toBe(2);
    expect(digest.hash).toBe(
      sha(
        packHashInput([
          { path: "unet/model.onnx", sha256: sha("weights") },
          { path: "kiln-model.json", sha256: sha("{}") },
        ]),
      ),
    );
  });
});
