import { mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";
import { setTimeout as delay } from "node:timers/promises";
import Fastify, { type FastifyInstance } from "fastify";
import type { Logger } from "pino";
import { registerA1111Api } from "../../coordinator/a1111/a1111-routes";
import type { Coordinator } from "../../coordinator/coordinator";
import {
  A1111_DEFAULT_PORT,
  A1111ApiSettings,
  type A1111ApiStatus,
  type A1111ApiSettings as Settings,
} from "../../shared/desktop-bridge";

/** Kept by the main process in userData beside library-settings.json: the API starts before any window. */
export const A1111_SETTINGS_FILE = "a1111-api-settings.json";

/** How long the status over IPC waits for a change under way before it answers with the status as it stands. */
const CURRENT_WAIT_MS = 2000;

/** As `kiln serve`: bodies over 1 MiB get 413 (the API's png-info and img2img allow more themselves). */
const BODY_LIMIT = 1024 * 1024;

/** Off, at A1111's port, unless the file says otherwise; each field falls back on its own. */
export function loadA1111Settings(file: string): Settings {
  let saved: Record<string, unknown> = {};
  try {
    saved = JSON.parse(readFileSync(file, "utf8"));
  } catch {
    // No file yet, or not ours: the defaults.
  }
  const field = <K extends keyof Settings>(key: K, fallback: Settings[K]): Settings[K] => {
    const parsed = A1111ApiSettings.shape[key].safeParse(saved?.[key]);
    return parsed.success ? (parsed.data as Settings[K]) : fallback;
  };
  return { enabled: field("enabled", false), port: field("port", A1111_DEFAULT_PORT) };
}

export function saveA1111Settings(file: string, settings: Settings): void {
  mkdirSync(dirname(file), { recursive: true });
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, JSON.stringify({ enabled: settings.enabled, port: settings.port }), { mode: 0o600 });
  renameSync(tmp, file);
}

/**
 * The desktop app's switch for the AUTOMATIC1111 API (issue 17): when on, the
 * app's own coordinator serves `/sdapi/v1` on 127.0.0.1 at the chosen port,
 * as `kiln serve` does without `--lan` (this computer only, no password, the
 * same Host and Origin checks), so Open WebUI or SillyTavern on this computer
 * render on the farm the app drives. Off by default. Changes apply at once and
 * are kept for the next start; a port another program holds is reported, not
 * thrown, and the switch stays on for when it is free (the next start).
 */
export class A1111ApiSwitch {
  private settings: Settings;
  private server: FastifyInstance | null = null;
  private problem: string | null = null;
  /** Changes run one after another: a server is closed before the next one listens. */
  private applying: Promise<unknown> = Promise.resolve();

  constructor(private readonly opts: { coordinator: Coordinator; dataDir: string; file: string; log: Logger }) {
    this.settings = loadA1111Settings(opts.file);
  }

  status(): A1111ApiStatus {
    return {
      ...this.settings,
      url: this.server ? `http://127.0.0.1:${this.settings.port}` : null,
      problem: this.problem,
    };
  }

  /**
   * The status once the changes under way are applied, or as it stands after CURRENT_WAIT_MS: a change that closes a
   * server waits for the renders it answers, minutes perhaps, and the settings would show nothing meanwhile (the
   * panel says "Starting…" for a switch on that does not serve yet, and asks again).
   */
  current(): Promise<A1111ApiStatus> {
    return Promise.race([this.applying, delay(CURRENT_WAIT_MS, undefined, { ref: false })]).then(() => this.status());
  }

  /** Serves as the saved settings say (at the app's start). */
  start(): Promise<A1111ApiStatus> {
    return this.enqueue(() => this.apply());
  }

  /** A person's change from the settings: kept, then applied. */
  set(settings: Settings): Promise<A1111ApiStatus> {
    return this.enqueue(async () => {
      saveA1111Settings(this.opts.file, settings);
      this.settings = { ...settings };
      await this.apply();
    });
  }

  /** Stops serving (the app quits); the setting stays as it is. */
  stop(): Promise<A1111ApiStatus> {
    return this.enqueue(() => this.close());
  }

  private enqueue(work: () => Promise<void>): Promise<A1111ApiStatus> {
    const run = this.applying.then(work, work).then(() => this.status());
    this.applying = run.catch(() => undefined);
    return run;
  }

  private async apply(): Promise<void> {
    await this.close();
    this.problem = null;
    if (!this.settings.enabled) return;
    const { port } = this.settings;
    const app = Fastify({ bodyLimit: BODY_LIMIT });
    await app.register(registerA1111Api, {
      coordinator: this.opts.coordinator,
      log: this.opts.log,
      dataDir: this.opts.dataDir,
      guard: { credentials: null, hostNames: [], corsOrigins: [] },
      flags: { lan: false, port },
    });
    try {
      await app.listen({ host: "127.0.0.1", port });
    } catch (error) {
      await app.close().catch(() => undefined);
      const code = (error as NodeJS.ErrnoException).code;
      this.problem =
        code === "EADDRINUSE"
          ? `port ${port} is in use by another program: pick another port`
          : `could not serve on port ${port}: ${(error as Error).message}`;
      this.opts.log.warn({ port, reason: this.problem }, "the A1111 API is not served");
      return;
    }
    this.server = app;
    this.opts.log.info({ url: this.status().url }, "serving the A1111 API");
  }

  private async close(): Promise<void> {
    const server = this.server;
    this.server = null;
    if (server) await server.close();
  }
}
