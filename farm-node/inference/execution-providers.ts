import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import * as ort from "onnxruntime-node";
import type { Backend } from "../../shared/device";
import { KilnError } from "../../shared/errors";
import { GraphBuilder } from "../onnx/onnx-graph-builder";

/** A model as ONNX bytes built in memory or the path of a `.onnx` file. */
export type ModelSource = Uint8Array | string;

/**
 * A model plus the outputs that should stay in GPU memory for the next
 * session's run (only the WebGPU provider can: `preferredOutputLocation`).
 * Such outputs come back as GPU tensors that the caller must dispose.
 */
export interface SessionModel {
  source: ModelSource;
  deviceOutputs: readonly string[];
}

export interface SessionSettings {
  /** Threads of the CPU provider (and of CPU fallback nodes); ORT's default is one per physical core. */
  intraOpThreads?: number;
}

export interface ProviderSessions {
  /** One session per model, in the order given, all on the same provider. */
  sessions: ort.InferenceSession[];
  /** The provider that really runs them. */
  backend: Backend;
  /** Why each provider before it was passed over. */
  notes: string[];
}

/** A WebGPU adapter request that has not answered in this long is treated as hung. */
const WEBGPU_PROBE_TIMEOUT_MS = 15_000;

const require = createRequire(import.meta.url);
const ORT_ENTRY = require.resolve("onnxruntime-node");
/** Where onnxruntime-node keeps its native libraries (and the optional CUDA provider). */
const ORT_BIN_DIR = join(dirname(ORT_ENTRY), "..", "bin", "napi-v6", process.platform, process.arch);

/**
 * Creates sessions for all `models` on the first provider of `providers` that
 * works, trying them in order. ONNX Runtime itself does not fall back: a
 * session whose provider cannot start fails as a whole (checked with
 * onnxruntime-node 1.30), so each provider is tried on its own and the
 * reasons for skipping it are kept for the node's log and `/v1/node`.
 *
 * Behaviour measured on a machine without a GPU:
 * - cuda: the provider libraries are a separate download that Kiln's install
 *   leaves off; when absent, ORT fails in under a millisecond but also logs an
 *   error line to stderr, so the files are checked first and cuda is skipped quietly.
 * - webgpu: bundled; with no Vulkan loader/adapter, session creation fails in
 *   about a millisecond ("No supported adapters"). Because a broken driver can
 *   instead make the adapter request hang, and a native call cannot be
 *   interrupted, the adapter is first probed in a child process with a deadline
 *   (about 80 ms here, once per process).
 */
export async function createSessions(
  models: readonly (ModelSource | SessionModel)[],
  providers: readonly Backend[],
  settings: SessionSettings = {},
): Promise<ProviderSessions> {
  const notes: string[] = [];
  for (const backend of providers) {
    const skip = await unavailableReason(backend);
    if (skip) {
      notes.push(`${backend}: ${skip}`);
      continue;
    }
    const sessions: ort.InferenceSession[] = [];
    try {
      for (const model of models) sessions.push(await createOn(model, backend, settings));
      return { sessions, backend, notes };
    } catch (error) {
      await Promise.all(sessions.map((s) => s.release()));
      notes.push(`${backend}: session creation failed: ${firstLine(error)}`);
    }
  }
  throw new KilnError(
    "E_INFERENCE",
    `no execution provider could run the model (tried ${providers.join(", ")}): ${notes.join("; ")}`,
    { providerNotes: notes },
  );
}

/** Why a provider cannot be used here, or null when it is worth trying. */
async function unavailableReason(backend: Backend): Promise<string | null> {
  switch (backend) {
    case "sim":
      return "not an ONNX Runtime provider (simulated devices do not run models)";
    case "cpu":
      return null;
    case "cuda":
      return cudaMissingReason();
    case "webgpu":
      webgpuProbe ??= probeWebGpu();
      return webgpuProbe;
  }
}

function cudaMissingReason(): string | null {
  const supported = ort.listSupportedBackends().some((b) => b.name === "cuda");
  if (!supported) return `not supported by onnxruntime-node on ${process.platform}/${process.arch}`;
  const files =
    process.platform === "win32"
      ? ["onnxruntime_providers_cuda.dll", "onnxruntime_providers_shared.dll"]
      : ["libonnxruntime_providers_cuda.so", "libonnxruntime_providers_shared.so"];
  const missing = files.filter((f) => !existsSync(join(ORT_BIN_DIR, f)));
  if (missing.length === 0) return null;
  return (
    `CUDA provider not installed (${missing.join(", ")} missing in ${ORT_BIN_DIR}; ` +
    "install onnxruntime-node with --onnxruntime-node-install=cuda12)"
  );
}

let webgpuProbe: Promise<string | null> | undefined;

/** Creates a tiny WebGPU session in a child process; null when it worked. */
function probeWebGpu(): Promise<string | null> {
  const script = `
    const ort = require(process.argv[1]);
    ort.InferenceSession.create(Buffer.from(process.argv[2], "base64"), { executionProviders: ["webgpu"] })
      .then(() => process.exit(0), (e) => { process.stdout.write(String(e && e.message)); process.exit(1); });`;
  const model = Buffer.from(identityModel()).toString("base64");
  const started = performance.now();
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ["-e", script, ORT_ENTRY, model],
      {
        timeout: WEBGPU_PROBE_TIMEOUT_MS,
        killSignal: "SIGKILL",
        windowsHide: true,
        // Inside Electron, execPath is the app: this makes it behave as plain Node.
        env: { ...process.env, ELECTRON_RUN_AS_NODE: "1" },
      },
      (error, stdout) => {
        if (!error) return resolve(null);
        const ms = Math.round(performance.now() - started);
        if (error.killed) return resolve(`no WebGPU adapter answered within ${ms} ms (probe killed)`);
        resolve(`no usable WebGPU adapter: ${firstLine(stdout || error.message)}`);
      },
    );
  });
}

function identityModel(): Uint8Array {
  const g = new GraphBuilder("webgpu-probe");
  g.input("x", "float32", [1]);
  g.node("Identity", ["x"], ["y"]);
  g.output("y", "float32", [1]);
  return g.build();
}

function createOn(
  model: ModelSource | SessionModel,
  backend: Backend,
  settings: SessionSettings,
): Promise<ort.InferenceSession> {
  const { source, deviceOutputs } =
    typeof model === "string" || model instanceof Uint8Array ? { source: model, deviceOutputs: [] } : model;
  const options: ort.InferenceSession.SessionOptions = {
    executionProviders: [executionProvider(backend)],
    graphOptimizationLevel: "all",
    // Spinning pool threads steal the cores that PNG encoding and IPC need between runs
    // (measured on a 2-core CPU node: 26 → 43 images/s at 512×512 without spinning).
    extra: { session: { intra_op: { allow_spinning: "0" } } },
    ...(settings.intraOpThreads ? { intraOpNumThreads: settings.intraOpThreads } : {}),
    ...(backend === "webgpu" && deviceOutputs.length > 0
      ? { preferredOutputLocation: Object.fromEntries(deviceOutputs.map((name) => [name, "gpu-buffer" as const])) }
      : {}),
  };
  return typeof source === "string"
    ? ort.InferenceSession.create(source, options)
    : ort.InferenceSession.create(source, options);
}

function executionProvider(backend: Backend): ort.InferenceSession.ExecutionProviderConfig {
  // Each worker sees only its own GPU (CUDA_VISIBLE_DEVICES), so it is always device 0.
  if (backend === "cuda") return { name: "cuda", deviceId: 0 };
  return backend;
}

function firstLine(error: unknown): string {
  const text = error instanceof Error ? error.message : String(error);
  // ORT prefixes messages with its source location; the reason is at the end.
  const line = text.trim().split("\n")[0] ?? "";
  const reason = /was false\.\s*(.+)$/.exec(line)?.[1] ?? line.replace(/^\/onnxruntime_src\/\S+\s+/, "");
  return reason.slice(0, 300);
}
