import type * as ort from "onnxruntime-node";
import { describe, expect, it } from "vitest";
import { timedRun } from "../../../farm-node/inference/timed-run";

/** A CUDA session's failure, which cannot happen on this machine: faked at the session, the outermost seam. */
const failingWith = (message: string) =>
  ({ run: async () => Promise.reject(new Error(message)) }) as unknown as ort.InferenceSession;

describe("a session run that fails (fake CUDA session: no GPU here)", () => {
  it("is an out-of-memory (E_OOM: the batch is halved) for ONNX Runtime's, cuBLAS's, cuDNN's and the driver's words", async () => {
    for (const message of [
      "[ONNXRuntimeError] : 6 : RUNTIME_EXCEPTION : Non-zero status code returned while running Conv node. Failed to allocate memory for requested buffer of size 1073741824",
      "CUBLAS failure 3: CUBLAS_STATUS_ALLOC_FAILED ; GPU=0 ; hostname=rack-07 ; expr=cublasCreate(&cublas_handle_);",
      "CUDNN failure 2: CUDNN_STATUS_ALLOC_FAILED ; GPU=0",
      "CUDA failure 2: out of memory ; GPU=0",
      "CUDA_ERROR_OUT_OF_MEMORY",
    ]) {
      const clock = { ortMs: 0 };
      await expect(timedRun(failingWith(message), clock, {}, "unet")).rejects.toMatchObject({ code: "E_OOM" });
    }
  });

  it("is an inference failure (E_INFERENCE) for anything else", async () => {
    const clock = { ortMs: 0 };
    await expect(
      timedRun(failingWith("Got invalid dimensions for input: sample"), clock, {}, "unet"),
    ).rejects.toMatchObject({ code: "E_INFERENCE", message: "unet failed: Got invalid dimensions for input: sample" });
  });
});
