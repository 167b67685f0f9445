import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { Logger } from "pino";
import { type NodePin, pinFromPem } from "./node-client";

/** Where the local node's token is handed over: a file only this user can read, never its command line. */
const TOKEN_FILE = "local-token";
/** The node daemon's entry point; the coordinator starts it as a child, never imports it. */
const KILN_NODE_BIN = fileURLToPath(new URL("../../bin/kiln-node.js", import.meta.url));

export interface LocalNodeOptions {
  stateDir: string;
  /** Extra kiln-node flags, e.g. `--simulate 1x8GB@4` or `--devices cpu`. */
  args: string[];
  log: Logger;
}

export interface LocalNodeInfo {
  nodeId: string;
  port: number;
  token: string;
  /** Its certificate, read from the state dir this process gave the node: trusted without pairing. */
  pin: NodePin;
}

/**
 * "This computer": a kiln-node child on 127.0.0.1 with a private token, so a
 * studio with no farm still renders. It never advertises itself on the LAN.
 */
export class LocalNode {
  private child: ChildProcess | null = null;
  private stopping = false;

  constructor(private readonly opts: LocalNodeOptions) {}

  start(): Promise<LocalNodeInfo> {
    const token = randomBytes(32).toString("base64url");
    mkdirSync(this.opts.stateDir, { recursive: true, mode: 0o700 });
    const tokenFile = join(this.opts.stateDir, TOKEN_FILE);
    // Created new (never an existing file or link of someone else's), private, then moved into place.
    const tmp = `${tokenFile}.${randomBytes(8).toString("hex")}.tmp`;
    writeFileSync(tmp, `${token}\n`, { mode: 0o600, flag: "wx" });
    renameSync(tmp, tokenFile);
    const args = [
      KILN_NODE_BIN,
      "--host",
      "127.0.0.1",
      "--port",
      "0",
      "--no-mdns",
      "--name",
      "This computer",
      "--state-dir",
      this.opts.stateDir,
      "--token-file",
      tokenFile,
      // Its stdin is our pipe: when this process dies, even by SIGKILL, the node stops too.
      "--exit-with-stdin",
      ...this.opts.args,
    ];
    const child = spawn(process.execPath, args, {
      stdio: ["pipe", "pipe", "pipe"],
      env: { ...process.env, ELECTRON_RUN_AS_NODE: "1" },
    });
    this.child = child;
    const log = this.opts.log.child({ localNode: true });
    return new Promise((resolve, reject) => {
      let buffer = "";
      let stderr = "";
      child.stderr?.setEncoding("utf8");
      child.stderr?.on("data", (chunk: string) => {
        stderr = (stderr + chunk).slice(-4000);
      });
      child.stdout?.setEncoding("utf8");
      child.stdout?.on("data", (chunk: string) => {
        buffer += chunk;
        const lines = buffer.split("\n");
        buffer = lines.pop() ?? "";
        for (const line of lines) {
          let entry: { msg?: string; port?: number; nodeId?: string; level?: number };
          try {
            entry = JSON.parse(line);
          } catch {
            continue;
          }
          if (entry.msg === "listening" && entry.port && entry.nodeId) {
            // Read at its start: the secret need not stay on disk.
            rmSync(tokenFile, { force: true });
            resolve({
              nodeId: entry.nodeId,
              port: entry.port,
              token,
              pin: pinFromPem(readFileSync(join(this.opts.stateDir, "tls-cert.pem"), "utf8")),
            });
          }
          if ((entry.level ?? 0) >= 40) log.warn({ node: entry }, entry.msg ?? "local node warning");
        }
      });
      child.on("exit", (code, signal) => {
        this.child = null;
        if (!this.stopping) {
          log.error({ code, signal, stderr }, "the local node exited");
          reject(new Error(`the local kiln-node exited (${signal ?? code}) before it was ready: ${stderr.trim()}`));
        }
      });
    });
  }

  /** SIGTERM (the node hands back queued work and exits), then SIGKILL after `graceMs`. */
  async stop(graceMs = 15_000): Promise<void> {
    const child = this.child;
    if (!child) return;
    this.stopping = true;
    const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
    child.kill("SIGTERM");
    const timer = setTimeout(() => child.kill("SIGKILL"), graceMs);
    await exited;
    clearTimeout(timer);
  }
}
