import { randomUUID } from "node:crypto";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { z } from "zod";
import type { FarmApp } from "../../shared/farm-protocol";
import type { NodeSummary } from "../../shared/ui-api";
import type { FarmClient } from "./farm-client";

/** In the data dir: this app's id on the farm, so its queue and stream survive a restart. */
export const FARM_APP_FILE = "farm-app.json";
const Stored = z.object({ id: z.string().uuid() });

export function loadFarmApp(file: string, name: string): FarmApp {
  let id: string | undefined;
  if (existsSync(file)) id = Stored.safeParse(JSON.parse(readFileSync(file, "utf8"))).data?.id;
  if (!id) {
    id = randomUUID();
    writeFileSync(file, `${JSON.stringify({ id })}\n`, { mode: 0o600 });
  }
  return { id, name, weight: 1 };
}

/** The farm's nodes for the farm panel, from their reports on Redis: the same cards as LAN nodes. */
export function farmNodeSummaries(farm: FarmClient): NodeSummary[] {
  return farm.nodeReports().map((report) => {
    const url = new URL(report.url);
    return {
      id: report.id,
      name: report.name,
      host: url.hostname,
      port: Number(url.port) || 443,
      status: farm.isStale(report) ? "lost" : "online",
      version: report.version,
      local: false,
      drained: false,
      devices: report.devices,
      you: farm.app.id,
      models: report.models,
      problem: farm.isStale(report)
        ? `no report on the farm for ${Math.round((Date.now() - report.at) / 1000)} s`
        : null,
      fingerprint: report.fingerprint,
      blockedModels: [],
      history: {},
      // Packs the node fetched from the farm's apps, shown as the LAN shows pushes (failed ones with why).
      ...(report.fetches && report.fetches.length > 0
        ? {
            pushes: report.fetches.map((f) => ({
              model: f.model,
              state: f.state === "fetching" ? ("pushing" as const) : f.state,
              percent: f.percent,
              bytesPerSecond: f.bytesPerSecond,
              reason: f.reason,
            })),
          }
        : {}),
    };
  });
}
