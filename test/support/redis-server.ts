import { type ChildProcess, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { Redis } from "ioredis";
import { freePort } from "./free-port";
import { tempDir } from "./temp-dir";

// Debian's real redis-server (apt-get install redis-server; CI installs it in .ci/run).
const REDIS_SERVER = "/usr/bin/redis-server";
const READY_TIMEOUT_MS = 10_000;
const LOG_TAIL_CHARS = 4000;

export interface RunningRedis {
  /** redis://127.0.0.1:PORT */
  readonly url: string;
  readonly port: number;
  /** Data dir: the append-only file lives here across restarts (left in the temp dir afterwards). */
  readonly dir: string;
  /** The redis-server process now running (a restart gives a new one). */
  readonly pid: number | undefined;
  /** The last few KB of the current process's stdout and stderr. */
  readonly log: string;
  /** SIGTERM (Redis flushes its AOF) and wait for the exit. Safe to call twice. */
  stop(): Promise<void>;
  /** SIGKILL and wait. */
  kill(): Promise<void>;
  /**
   * Stops it with SIGTERM (if it still runs) and starts it again on the same port and
   * data dir; resolves once it answers PING. After kill() this only starts it again.
   */
  restart(): Promise<void>;
}

/** Why the Redis tests cannot run here (for a printed skip), or null when Debian's redis-server is installed. */
export function redisUnavailable(): string | null {
  return existsSync(REDIS_SERVER) ? null : `${REDIS_SERVER} is missing (apt-get install redis-server)`;
}

/**
 * Debian's real redis-server on a free loopback port, with a fresh data dir and the
 * append-only file on and fsynced on every write, so neither a restart nor a SIGKILL
 * loses a write that was acknowledged. No RDB snapshots (`--save ""`).
 *
 * A test that forgets to stop it does not leave it running: see `launch` for the
 * watchdog that kills it when this process goes, however it goes.
 */
export async function startRedis(): Promise<RunningRedis> {
  const port = await freePort();
  const dir = tempDir("kiln-redis-");
  let current = await launch(port, dir);
  const stopWith = async (signal: NodeJS.Signals) => {
    const { child } = current;
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
      return current.child.pid;
    },
    get log() {
      return current.log();
    },
    stop: () => stopWith("SIGTERM"),
    kill: () => stopWith("SIGKILL"),
    async restart() {
      await stopWith("SIGTERM");
      current = await launch(port, dir);
    },
  };
}

interface Launched {
  child: ChildProcess;
  log(): string;
}

/** Every redis-server this process started and that has not exited yet. */
const live = new Set<ChildProcess>();
let exitHookInstalled = false;

async function launch(port: number, dir: string): Promise<Launched> {
  const args = [
    "--port",
    String(port),
    // Loopback only; protected mode stays on (it only refuses non-loopback clients).
    "--bind",
    "127.0.0.1",
    "--protected-mode",
    "yes",
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
    // Logs go to stdout, which we keep a tail of for error messages.
    "--logfile",
    "",
  ];
  const child = spawn(REDIS_SERVER, args, { stdio: ["ignore", "pipe", "pipe"] });
  let log = "";
  const append = (text: string) => {
    log = (log + text).slice(-LOG_TAIL_CHARS);
  };
  for (const stream of [child.stdout, child.stderr]) {
    stream?.setEncoding("utf8");
    stream?.on("data", append);
  }
  // A spawn failure (missing binary, EACCES) arrives as 'error'; without a listener it would crash the run.
  let spawnError: Error | undefined;
  child.on("error", (error) => {
    spawnError = error;
    append(`\n[spawn error] ${error.message}\n`);
  });

  if (child.pid !== undefined) {
    live.add(child);
    // Vitest stops its fork workers with SIGTERM (then SIGKILL), and 'exit' handlers do
    // not run on either, so a process 'exit' hook alone would leave redis-server behind.
    // The watchdog: a tiny shell that blocks reading a pipe from this process. When this
    // process is gone, however it went, the pipe closes, `read` returns and the shell
    // SIGKILLs the redis-server. While we live, it is killed once redis-server exits.
    const watchdog = spawn("/bin/sh", ["-c", 'read _; kill -9 "$1" 2>/dev/null', "redis-watchdog", String(child.pid)], {
      stdio: ["pipe", "ignore", "ignore"],
    });
    watchdog.on("error", () => {}); // best effort; the 'exit' hook below still runs on a normal exit
    child.once("exit", () => {
      live.delete(child);
      watchdog.kill("SIGKILL");
    });
  }
  // On a normal exit of this process (not a signal), kill synchronously right away.
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.on("exit", () => {
      for (const c of live) c.kill("SIGKILL");
    });
  }

  const deadline = Date.now() + READY_TIMEOUT_MS;
  for (;;) {
    if (spawnError !== undefined || child.exitCode !== null || child.signalCode !== null) {
      const how = spawnError?.message ?? `exit code ${child.exitCode}, signal ${child.signalCode}`;
      throw new Error(`redis-server on port ${port} did not start (${how}); its log:\n${log}`);
    }
    if (await answersPing(port)) return { child, log: () => log };
    if (Date.now() > deadline) {
      child.kill("SIGKILL");
      throw new Error(
        `redis-server on port ${port} did not answer PING within ${READY_TIMEOUT_MS} ms; its log:\n${log}`,
      );
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** One connection attempt, no retries: true once the server answers PONG. */
async function answersPing(port: number): Promise<boolean> {
  const client = new Redis({
    port,
    host: "127.0.0.1",
    lazyConnect: true,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
  });
  client.on("error", () => {}); // ECONNREFUSED until it listens
  try {
    await client.connect();
    return (await client.ping()) === "PONG";
  } catch {
    return false;
  } finally {
    client.disconnect();
  }
}
