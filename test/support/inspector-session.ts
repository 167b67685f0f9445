import { readdirSync, readFileSync, readlinkSync } from "node:fs";
import { fetch } from "undici";
import WebSocket from "ws";

/** What a process started with this in NODE_OPTIONS lets a bench ask it: a forced GC, its heap, a heap snapshot. */
export const INSPECT_ANY_PORT = "--inspect=127.0.0.1:0";

/**
 * A Chrome DevTools protocol session with another Node process's inspector, so a
 * bench can read the process's own memory figures without the process exposing
 * anything for it. The process must run with {@link INSPECT_ANY_PORT}.
 */
export class InspectorSession {
  private nextId = 1;
  private readonly pending = new Map<number, { resolve(result: unknown): void; reject(error: Error): void }>();
  private readonly listeners = new Map<string, (params: unknown) => void>();

  private constructor(private readonly socket: WebSocket) {
    socket.on("message", (data) => {
      const message = JSON.parse(String(data)) as {
        id?: number;
        result?: unknown;
        error?: { message: string };
        method?: string;
        params?: unknown;
      };
      if (message.id === undefined) {
        if (message.method) this.listeners.get(message.method)?.(message.params);
        return;
      }
      const waiter = this.pending.get(message.id);
      this.pending.delete(message.id);
      if (message.error) waiter?.reject(new Error(`inspector: ${message.error.message}`));
      else waiter?.resolve(message.result);
    });
    socket.on("close", () => {
      for (const waiter of this.pending.values()) waiter.reject(new Error("inspector session closed"));
      this.pending.clear();
    });
  }

  /** Attaches to the inspector that process `pid` listens with (the one of its listening ports not in `notPorts`). */
  static async attach(pid: number, notPorts: number[] = []): Promise<InspectorSession> {
    const ports = listeningPorts(pid).filter((p) => !notPorts.includes(p));
    for (const port of ports) {
      const targets = await fetch(`http://127.0.0.1:${port}/json/list`).then(
        (res) => (res.ok ? (res.json() as Promise<Array<{ webSocketDebuggerUrl?: string }>>) : []),
        () => [],
      );
      const url = targets[0]?.webSocketDebuggerUrl;
      if (!url) continue;
      const socket = new WebSocket(url, { perMessageDeflate: false, maxPayload: 0 });
      await new Promise<void>((resolve, reject) => {
        socket.once("open", () => resolve());
        socket.once("error", reject);
      });
      return new InspectorSession(socket);
    }
    throw new Error(`process ${pid} has no inspector listening (was it started with ${INSPECT_ANY_PORT}?)`);
  }

  send<T = unknown>(method: string, params: Record<string, unknown> = {}): Promise<T> {
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (result: unknown) => void, reject });
      this.socket.send(JSON.stringify({ id, method, params }));
    });
  }

  /** Live JS heap in MB after a full garbage collection: what the process really holds on to. */
  async heapAfterGcMb(): Promise<number> {
    await this.send("HeapProfiler.collectGarbage");
    const { usedSize } = await this.send<{ usedSize: number }>("Runtime.getHeapUsage");
    return usedSize / 2 ** 20;
  }

  /** A heap snapshot (after a full GC, as V8 takes them), as the text DevTools would save to a .heapsnapshot file. */
  async heapSnapshot(): Promise<string> {
    const chunks: string[] = [];
    this.listeners.set("HeapProfiler.addHeapSnapshotChunk", (params) => {
      chunks.push((params as { chunk: string }).chunk);
    });
    try {
      await this.send("HeapProfiler.takeHeapSnapshot", { reportProgress: false });
    } finally {
      this.listeners.delete("HeapProfiler.addHeapSnapshotChunk");
    }
    return chunks.join("");
  }

  close(): void {
    this.socket.close();
  }
}

/** TCP ports process `pid` listens on, from /proc: its sockets' inodes matched against the kernel's socket tables. */
function listeningPorts(pid: number): number[] {
  const inodes = new Set<string>();
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      const target = readlinkSync(`/proc/${pid}/fd/${fd}`);
      const inode = /^socket:\[(\d+)\]$/.exec(target)?.[1];
      if (inode) inodes.add(inode);
    } catch {
      // Closed between the listing and the read.
    }
  }
  const ports: number[] = [];
  for (const table of ["tcp", "tcp6"]) {
    let text: string;
    try {
      text = readFileSync(`/proc/${pid}/net/${table}`, "utf8");
    } catch {
      continue;
    }
    for (const line of text.split("\n").slice(1)) {
      const fields = line.trim().split(/\s+/);
      const [, local, , state, , , , , , inode] = fields;
      // State 0A is LISTEN.
      if (state === "0A" && inode && inodes.has(inode) && local)
        ports.push(Number.parseInt(local.split(":")[1] ?? "", 16));
    }
  }
  return ports;
}
