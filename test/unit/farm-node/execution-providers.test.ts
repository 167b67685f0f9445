import { existsSync } from "node:fs";
import * as ort from "onnxruntime-node";
import { describe, expect, it } from "vitest";
import { createSessions } from "../../../farm-node/inference/execution-providers";
import { GraphBuilder } from "../../../farm-node/onnx/onnx-graph-builder";

function doubler(): Uint8Array {
  const g = new GraphBuilder("double");
  g.input("x", "float32", ["n"]);
  g.weights("two", [], [2]);
  g.node("Mul", ["x", "two"], ["y"]);
  g.output("y", "float32", ["n"]);
  return g.build();
}

// These machines have no GPU: no NVIDIA device, no render node for Vulkan. Where one is, cuda or webgpu may run.
const hasGpu = existsSync("/dev/nvidia0") || existsSync("/dev/dri");
if (hasGpu)
  console.warn("SKIPPED execution provider fallback to the CPU: this machine has a GPU, so cuda or webgpu may run");

describe("execution provider fallback", () => {
  it.skipIf(hasGpu)(
    "falls back from cuda and webgpu to cpu on a machine without a GPU, saying why each was skipped",
    async () => {
      const { sessions, backend, notes } = await createSessions([doubler(), doubler()], ["cuda", "webgpu", "cpu"]);

      expect(backend).toBe("cpu");
      expect(sessions).toHaveLength(2);
      expect(notes).toHaveLength(2);
      expect(notes[0]).toMatch(/^cuda: CUDA provider not installed \(libonnxruntime_providers_cuda\.so/);
      expect(notes[1]).toMatch(/^webgpu: no usable WebGPU adapter/);

      const out = await sessions[1]?.run({ x: new ort.Tensor("float32", Float32Array.of(1, 2.5), [2]) });
      expect(Array.from(out?.y?.data as Float32Array)).toEqual([2, 5]);
      await Promise.all(sessions.map((s) => s.release()));
    },
  );

  it("notes that sim is no ONNX Runtime provider", async () => {
    const { sessions, backend, notes } = await createSessions([doubler()], ["sim", "cpu"]);
    expect(backend).toBe("cpu");
    expect(notes).toEqual(["sim: not an ONNX Runtime provider (simulated devices do not run models)"]);
    await sessions[0]?.release();
  });

  it.skipIf(hasGpu)("fails with every reason when no listed provider works (a machine without a GPU)", async () => {
    const attempt = createSessions([doubler()], ["cuda", "webgpu"]);
    await expect(attempt).rejects.toMatchObject({ code: "E_INFERENCE" });
    await expect(attempt).rejects.toThrow(
      /no execution provider could run the model \(tried cuda, webgpu\): cuda: CUDA provider not installed.*; webgpu: no usable WebGPU adapter/,
    );
  });

  it("reports a model the provider cannot load as a failed provider", async () => {
    await expect(createSessions([Uint8Array.of(1, 2, 3)], ["cpu"])).rejects.toThrow(/cpu: session creation failed/);
  });
});
