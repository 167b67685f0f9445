import type * as ort from "onnxruntime-node";
import { KilnError } from "../../shared/errors";

/** Time spent inside ONNX Runtime, so benchmarks can tell inference from JavaScript glue. */
export interface OrtClock {
  ortMs: number;
}

/**
 * One session run: its time added to `clock`, its failure turned into a
 * KilnError whose code the scheduler acts on (E_OOM halves the batch).
 */
export async function timedRun(
  session: ort.InferenceSession,
  clock: OrtClock,
  feeds: Record<string, ort.Tensor>,
  what: string,
): Promise<ort.InferenceSession.ReturnType> {
  const start = performance.now();
  try {
    return await session.run(feeds);
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    throw new KilnError(isOutOfMemory(message) ? "E_OOM" : "E_INFERENCE", `${what} failed: ${message}`);
  } finally {
    clock.ortMs += performance.now() - start;
  }
}

/**
 * Whether ONNX Runtime's message says the device ran out of memory: its own allocator's words, and cuBLAS's and
 * cuDNN's (CUBLAS_STATUS_ALLOC_FAILED, CUDNN_STATUS_ALLOC_FAILED) and the CUDA driver's. Missed, an out-of-memory
 * counted as a failure of the image and of the node instead of halving the batch.
 */
function isOutOfMemory(message: string): boolean {
  return /bad_alloc|out of memory|failed to allocate|ALLOC_FAILED|CUDA_ERROR_OUT_OF_MEMORY/i.test(message);
}
