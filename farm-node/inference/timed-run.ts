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
    const oom = /bad_alloc|out of memory|failed to allocate/i.test(message);
    throw new KilnError(oom ? "E_OOM" : "E_INFERENCE", `${what} failed: ${message}`);
  } finally {
    clock.ortMs += performance.now() - start;
  }
}
