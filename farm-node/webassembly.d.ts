/**
 * The part of the WebAssembly JavaScript API the node uses. TypeScript
 * declares it only in the DOM library, which node-side code must not see, and
 * @types/node 20 does not declare it; Node 20 has the whole API at runtime.
 */
declare namespace WebAssembly {
  class Module {
    constructor(bytes: BufferSource);
  }
  class Instance {
    constructor(module: Module, imports?: Record<string, Record<string, unknown>>);
    readonly exports: Record<string, unknown>;
  }
  class Memory {
    constructor(descriptor: { initial: number; maximum?: number });
    readonly buffer: ArrayBuffer;
    grow(pages: number): number;
  }
}
