import { createHash } from "node:crypto";
import { describe, expect, it } from "vitest";
import { bytesStillNeeded, diskSpaceProblem, offerHashProblem, planPush } from "../../../../farm-node/models/push-plan";
import { PackOffer, packPathProblem } from "../../../../shared/model-push";
import { packHashInput } from "../../../../shared/pack-files";

const sha = (text: string) => createHash("sha256").update(text).digest("hex");

function offer(files: Array<{ path: string; size: number; sha256: string }>, name = "pack"): PackOffer {
  return { name, hash: sha(packHashInput(files)), files };
}

describe("push offers", () => {
  it("accepts a well-formed offer and checks its hash against its files", () => {
    const good = offer([
      { path: "unet/model.onnx", size: 10, sha256: sha("u") },
      { path: "model_index.json", size: 2, sha256: sha("m") },
    ]);
    expect(PackOffer.safeParse(good).success).toBe(true);
    expect(offerHashProblem(good)).toBeNull();
    expect(offerHashProblem({ ...good, hash: sha("other") })).toMatch(/not the content hash/);
    // Order of files does not change the hash.
    expect(offerHashProblem({ ...good, files: [...good.files].reverse() })).toBeNull();
  });

  it("refuses path tricks, naming the field", () => {
    for (const path of [
      "../x",
      "/etc/passwd",
      "a/../../b",
      ".hidden",
      "a/.git/x",
      "a\\b",
      "a\0b",
      "a//b",
      "./a",
      "a/",
      "",
      "x.safetensors",
      "a\nb",
    ]) {
      expect(packPathProblem(path), JSON.stringify(path)).not.toBeNull();
      const parsed = PackOffer.safeParse(offer([{ path, size: 1, sha256: sha("x") }]));
      expect(parsed.success).toBe(false);
      expect(parsed.error?.issues.map((i) => i.path.join("."))).toContain("files.0.path");
    }
    expect(packPathProblem("text_encoder_2/model.onnx_data")).toBeNull();
  });

  it("refuses bad names, sizes, duplicates and a file that is also a folder", () => {
    const file = { path: "a.onnx", size: 1, sha256: sha("a") };
    for (const name of ["../up", ".dot", "a/b", "", "x".repeat(129)])
      expect(PackOffer.safeParse({ ...offer([file]), name }).success, name).toBe(false);
    expect(PackOffer.safeParse(offer([{ ...file, size: 2 ** 40 + 1 }])).success).toBe(false);
    expect(PackOffer.safeParse(offer([{ ...file, size: -1 }])).success).toBe(false);
    expect(PackOffer.safeParse(offer([file, file])).success).toBe(false);
    expect(
      PackOffer.safeParse(
        offer([
          { ...file, path: "a" },
          { ...file, path: "a/b.onnx" },
        ]),
      ).success,
    ).toBe(false);
    expect(PackOffer.safeParse(offer([])).success).toBe(false);
    expect(PackOffer.safeParse({ ...offer([file]), hash: "A".repeat(64) }).success).toBe(false);
  });
});

describe("push plans", () => {
  const files = [
    { path: "text_encoder/model.onnx", size: 100, sha256: sha("te") },
    { path: "unet/model.onnx", size: 300, sha256: sha("unet") },
    { path: "vae_decoder/model.onnx", size: 50, sha256: sha("vae") },
    { path: "empty.json", size: 0, sha256: sha("") },
  ];
  const pack = offer(files);

  it("links files a pack on the node has (same sha256 and size), resumes staged ones, sends the rest", () => {
    const known = new Map([
      [sha("te"), { path: "/models/sdxl/text_encoder/model.onnx", size: 100, sha256: sha("te") }],
      // Same digest claimed at another size: not trusted.
      [sha("vae"), { path: "/models/x/vae.onnx", size: 51, sha256: sha("vae") }],
    ]);
    const staged = new Map([["unet/model.onnx", { have: 120 }]]);
    const plan = planPush(pack, staged, known);
    expect(plan.map((f) => [f.source, f.have])).toEqual([
      ["linked", 0],
      ["send", 120],
      ["send", 0],
      ["send", 0],
    ]);
    expect(plan[0]?.linkFrom).toBe("/models/sdxl/text_encoder/model.onnx");
    expect(bytesStillNeeded(plan.filter((f) => f.source === "send"))).toBe(180 + 50);
  });

  it("keeps files linked before and starts over a file with more bytes staged than its size", () => {
    const staged = new Map([
      ["text_encoder/model.onnx", { have: 100, source: "linked" as const }],
      ["unet/model.onnx", { have: 301 }],
    ]);
    const plan = planPush(pack, staged, new Map());
    expect(plan[0]).toMatchObject({ source: "linked", have: 100 });
    expect(plan[1]).toMatchObject({ source: "send", have: 0 });
  });

  it("refuses what does not fit in free space minus the margin, naming both sizes", () => {
    expect(diskSpaceProblem(100, 1000, 500)).toBeNull();
    expect(diskSpaceProblem(500, 1000, 500)).toBeNull();
    const problem = diskSpaceProblem(501, 1000, 500);
    expect(problem).toContain("(501 bytes)");
    expect(problem).toContain("(500 bytes) may be used");
    expect(diskSpaceProblem(1, 100, 500)).toContain("(0 bytes) may be used");
  });
});
