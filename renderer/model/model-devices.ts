import type { ModelInfo } from "../../shared/node-info";
import type { ModelLibrary, NodeSummary } from "../../shared/ui-api";
import { isUpscaler } from "../../shared/upscale";
import { farmModels } from "./farm-models";

/** How many devices can render a model now, and once the pushes the app would make have landed. */
export interface ModelDevices {
  name: string;
  now: number;
  afterPushes: number;
}

/** A node that takes new work: online, not drained. */
function takesWork(node: NodeSummary): boolean {
  return node.status === "online" && !node.drained;
}

function devicesOf(node: NodeSummary): number {
  return node.devices.filter((d) => d.state !== "lost").length;
}

/** The node renders the model now: it lists it, can run it, and neither the blocklist nor other bytes keep it away. */
function rendersNow(node: NodeSummary, model: string): boolean {
  return (
    node.models.some((m) => m.name === model && m.available) &&
    !node.blockedModels.includes(model) &&
    !(node.differentModels ?? []).includes(model)
  );
}

/** The app would push the model to the node for a job (on demand): it lacks it, has other bytes, or receives it now. */
function receivesOnDemand(node: NodeSummary, model: string): boolean {
  if (node.local || node.blockedModels.includes(model)) return false;
  const state = node.library?.find((m) => m.model === model)?.status.state;
  return state === "missing" || state === "different" || state === "pushing";
}

/**
 * Device counts per model for the model picker (issue 16, item 6): devices of
 * nodes that take work and render it now, and, with on-demand pushes on, those
 * whose node would receive it for a job. Failed, refused and cancelled pushes
 * count for nothing until someone pushes again.
 */
export function modelDevices(nodes: readonly NodeSummary[], library: ModelLibrary | null, model: string): ModelDevices {
  let now = 0;
  let later = 0;
  const pushes = library?.onDemand === true && library.packs.some((p) => p.name === model && p.info !== null);
  for (const node of nodes) {
    if (!takesWork(node)) continue;
    if (rendersNow(node, model)) now += devicesOf(node);
    else if (pushes && receivesOnDemand(node, model)) later += devicesOf(node);
  }
  return { name: model, now, afterPushes: now + later };
}

/** "kiln-demo — 4 devices", "sdxl-x — 2 devices now, 6 after pushes". */
export function modelDevicesText(counts: ModelDevices): string {
  const devices = (n: number) => `${n} device${n === 1 ? "" : "s"}`;
  return counts.afterPushes === counts.now
    ? `${counts.name} — ${devices(counts.now)}`
    : `${counts.name} — ${devices(counts.now)} now, ${counts.afterPushes} after pushes`;
}

/**
 * The picker's models: what the farm runs now, and the library's usable packs
 * no node has yet (as nodes will describe them once pushed), by name. Objects
 * come from the store as they are, so a selector over them stays equal while
 * nothing changed.
 */
export function pickerModels(nodes: readonly NodeSummary[], library: ModelLibrary | null): ModelInfo[] {
  const onFarm = farmModels([...nodes]);
  const names = new Set(onFarm.map((m) => m.name));
  const fromLibrary = (library?.packs ?? []).flatMap((p) => (p.info && !names.has(p.name) ? [p.info] : []));
  // Upscaler packs upscale pictures; hires fix lists them, the picker does not.
  return [...onFarm, ...fromLibrary].filter((m) => !isUpscaler(m)).sort((a, b) => a.name.localeCompare(b.name));
}
