import { type ChildProcess, fork } from "node:child_process";
import { EventEmitter } from "node:events";
import { fileURLToPath } from "node:url";
import { FromWorker, type ToWorker, type WorkerInit } from "../../shared/worker-messages";

const WORKER_ENTRY = fileURLToPath(new URL("./worker-main.ts", import.meta.url));
/** tsx's loader by absolute URL: `--import tsx` would resolve against the working directory. */
const TSX_LOADER = import.meta.resolve("tsx");
/** A grandchild holding the worker's output open cannot delay its exit being told past this. */
const CLOSE_WAIT_MS = 1000;

export interface WorkerProcessEvents {
  message: [FromWorker];
  exit: [{ code: number | null; signal: NodeJS.Signals | null }];
}

/**
 * One worker child process and its typed IPC channel. The process is pinned to
 * its GPU with CUDA_VISIBLE_DEVICES so CUDA inside it only ever sees device 0.
 */
export class WorkerProcess extends EventEmitter<WorkerProcessEvents> {
  private readonly child: ChildProcess;
  private exited = false;
  /** stop() closed the IPC channel from this side. */
  private disconnected = false;

  constructor(
    init: WorkerInit,
    cudaIndex: number | undefined,
    log: (line: string) => void,
    /** After the worker exits, how long its output and IPC channel may take to close before its exit is told anyway. */
    closeWaitMs = CLOSE_WAIT_MS,
  ) {
    super();
    this.child = fork(WORKER_ENTRY, [], {
      execArgv: ["--import", TSX_LOADER],
      env: {
        ...process.env,
        // A CPU or simulated worker must not grab a GPU by accident.
        CUDA_VISIBLE_DEVICES: cudaIndex === undefined ? "" : String(cudaIndex),
        // nvidia-smi numbers GPUs in PCI bus order; CUDA must count the same way.
        CUDA_DEVICE_ORDER: "PCI_BUS_ID",
      },
      stdio: ["ignore", "pipe", "pipe", "ipc"],
      serialization: "advanced",
    });
    for (const stream of [this.child.stdout, this.child.stderr]) {
      stream?.setEncoding("utf8");
      stream?.on("data", (chunk: string) => {
        for (const line of chunk.split("\n")) if (line.trim()) log(line);
      });
    }
    this.child.on("message", (raw) => {
      const parsed = FromWorker.safeParse(raw);
      if (parsed.success) this.emit("message", parsed.data);
      else log(`malformed message from worker: ${parsed.error.message}`);
    });
    // Told on "close", not "exit": the worker's last messages (a start.failed sent just before it exits) come
    // before "close" but may come after "exit". A grandchild holding its output open cannot delay it past a second.
    let ended = false;
    const end = (code: number | null, signal: NodeJS.Signals | null) => {
      if (ended) return;
      ended = true;
      this.emit("exit", { code, signal });
    };
    // Node never emits "close" for a child whose IPC channel this side disconnected (stop() does), so every stop
    // waited out CLOSE_WAIT_MS: there, no message can come any more, and its exit with its output closed is the close.
    let openStreams = 0;
    let exitedWith: { code: number | null; signal: NodeJS.Signals | null } | null = null;
    const closedAfterStop = () => {
      if (this.disconnected && exitedWith && openStreams === 0) end(exitedWith.code, exitedWith.signal);
    };
    for (const stream of [this.child.stdout, this.child.stderr]) {
      if (!stream) continue;
      openStreams++;
      stream.once("close", () => {
        openStreams--;
        closedAfterStop();
      });
    }
    this.child.on("exit", (code, signal) => {
      this.exited = true;
      exitedWith = { code, signal };
      closedAfterStop();
      setTimeout(() => end(code, signal), closeWaitMs).unref();
    });
    this.child.on("close", (code, signal) => end(code, signal));
    // Unheard, a child's error (a fork the system refused, a failed IPC send) would end the daemon. A worker that
    // never started ends here like one that exited, so its runner starts another after its backoff.
    this.child.on("error", (error) => {
      log(`worker process error: ${error.message}`);
      if (this.child.pid === undefined && !this.exited) {
        this.exited = true;
        end(null, null);
      }
    });
    this.send(init);
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  get alive(): boolean {
    return !this.exited;
  }

  send(message: ToWorker): void {
    if (!this.exited && this.child.connected) this.child.send(message);
  }

  kill(signal: NodeJS.Signals = "SIGKILL"): void {
    if (!this.exited) this.child.kill(signal);
  }

  /** Asks the worker to exit (closing its channel), then kills it after `graceMs`. */
  async stop(graceMs: number): Promise<void> {
    if (this.exited) return;
    const exited = new Promise<void>((resolve) => this.once("exit", () => resolve()));
    if (this.child.connected) {
      this.disconnected = true;
      this.child.disconnect();
    }
    const timer = setTimeout(() => this.kill("SIGKILL"), graceMs);
    await exited;
    clearTimeout(timer);
  }
}
