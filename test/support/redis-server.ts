import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, mkdtempSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Redis } from "ioredis";

const REDIS_SERVER = "/usr/bin/redis-server";

export interface RunningRedis {
  /** redis://127.0.0.1:PORT */
  url: string;
  port: number;
  /** Data dir: the append-only file lives here across restarts. */
  dir: string;
  readonly pid: number | undefined;
  /** SIGTERM (Redis flushes its AOF) and wait for the exit. */
  stop(): Promise<void>;
  /** SIGKILL and wait. */
  kill(): Promise<void>;
  /** Stops it and starts it again on the same port and data dir; resolves once it answers PING. */
  restart(): Promise<void>;
}

/** Why the farm tests cannot run here, or null when Debian's redis-server is installed. */
export function redisUnavailable(): string | null {
  return existsSync(REDIS_SERVER) ? null : `${REDIS_SERVER} is missing (apt-get install redis-server)`;
}

/**
 * Debian's real redis-server on a free loopback port, with a fresh data dir and
 * the append-only file on and synced on every write, so a restart loses nothing
 * that was acknowledged. Stopped with the test process if a test forgets to.
 */
export async function startRedis(): Promise<RunningRedis> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), "kiln-redis-"));
  let child: ChildProcess = await launch(port, dir);
  const cleanup = () => child.kill("SIGKILL");
  process.once("exit", cleanup);
  const stopWith = async (signal: NodeJS.Signals) => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child.once("exit", resolve));
    child.kill(signal);
    await exited;
  };
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    dir,
    get pid() {
      return child.pid;
    },
    async stop() {
      await stopWith("SIGTERM");
      process.removeListener("exit", cleanup);
    },
    kill: () => stopWith("SIGKILL"),
    async restart() {
      await stopWith("SIGTERM");
      child = await launch(port, dir);
    },
  };
}

async function launch(port: number, dir: string): Promise<ChildProcess> {
  const args = [
    "--port",
    String(port),
    "--bind",
    "127.0.0.1",
    "--dir",
    dir,
    "--appendonly",
    "yes",
    "--appendfsync",
    "always",
    "--save",
    "",
    "--daemonize",
    "no",
    "--protected-mode",
    "yes",
  ];
  const child = spawn(REDIS_SERVER, args, { stdio: ["ignore", "pipe", "pipe"] });
  let log = "";
  for (const stream of [child.stdout, child.stderr]) {
    stream?.setEncoding("utf8");
    stream?.on("data", (chunk: string) => {
      log = (log + chunk).slice(-4000);
    });
  }
  const deadline = Date.now() + 10_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`redis-server exited with ${child.exitCode}:\n${log}`);
    const client = new Redis({
      port,
      host: "127.0.0.1",
      lazyConnect: true,
      maxRetriesPerRequest: 0,
      retryStrategy: () => null,
    });
    client.on("error", () => {});
    try {
      await client.connect();
      if ((await client.ping()) === "PONG") return child;
    } catch {
      // Not listening yet.
    } finally {
      client.disconnect();
    }
    if (Date.now() > deadline) {
      child.kill("SIGKILL");
      throw new Error(`redis-server on port ${port} did not answer PING within 10 s:\n${log}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() => resolve(typeof address === "object" && address ? address.port : 0));
    });
  });
}
