/**
 * Typed arrays a pipeline keeps from batch to batch. A batch at 512×512 needs
 * a few arrays of 256 KB–1 MB (latents, model input, noise, half-precision
 * copies); allocating them per step made V8 collect garbage every few steps,
 * since large array buffers count as external memory. Batches of one shape
 * follow each other, so each purpose keeps one buffer, grown when a larger
 * batch comes, and hands out a view of the length asked for.
 *
 * A view is valid until the same purpose is asked for again: one purpose per
 * use within a batch, and never across `await`s of two concurrent renders.
 */
export class ReusedBuffers<Purpose extends string> {
  private readonly float32s = new Map<Purpose, Float32Array>();
  private readonly uint16s = new Map<Purpose, Uint16Array>();

  float32(purpose: Purpose, length: number): Float32Array {
    return view(this.float32s, purpose, length, (n) => new Float32Array(n));
  }

  /** Half-precision bits (ONNX Runtime's float16 tensors). */
  uint16(purpose: Purpose, length: number): Uint16Array {
    return view(this.uint16s, purpose, length, (n) => new Uint16Array(n));
  }
}

function view<P, A extends Float32Array | Uint16Array>(
  kept: Map<P, A>,
  purpose: P,
  length: number,
  create: (length: number) => A,
): A {
  let buffer = kept.get(purpose);
  if (!buffer || buffer.length < length) {
    buffer = create(length);
    kept.set(purpose, buffer);
  }
  return (buffer.length === length ? buffer : buffer.subarray(0, length)) as A;
}
