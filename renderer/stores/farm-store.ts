import { create } from "zustand";
import {
  type DeviceSample,
  HISTORY_SAMPLES,
  type ModelLibrary,
  type NodeSummary,
  type UiEvent,
} from "../../shared/ui-api";

export type { DeviceSample };

export interface FarmTotals {
  /** Devices of nodes that take work (online or draining). */
  devices: number;
  busy: number;
  imagesPerMin: number;
  vramUsedMb: number;
  vramTotalMb: number;
}

export interface FarmState {
  /** Paired, discovered and conflicting nodes, with their devices' latest readings. */
  nodes: NodeSummary[];
  /** Per device uuid: the last 5 minutes of throughput and utilisation, oldest first. */
  history: Record<string, DeviceSample[]>;
  totals: FarmTotals;
  loaded: boolean;
  /** LAN (paired nodes) or farm mode (a shared queue on Redis), with the farm's address. */
  mode: { mode: "lan" | "farm"; farm: string | null };
  /** The studio's model library (folder, on-demand switch, packs); null until first heard. */
  library: ModelLibrary | null;
}

export function farmTotals(nodes: NodeSummary[]): FarmTotals {
  const totals: FarmTotals = { devices: 0, busy: 0, imagesPerMin: 0, vramUsedMb: 0, vramTotalMb: 0 };
  for (const node of nodes) {
    if (node.status !== "online" && node.status !== "draining") continue;
    for (const d of node.devices) {
      totals.devices += 1;
      if (d.state === "busy") totals.busy += 1;
      totals.imagesPerMin += d.imagesPerSec * 60;
      totals.vramUsedMb += d.vramUsedMb ?? 0;
      totals.vramTotalMb += d.vramTotalMb ?? 0;
    }
  }
  return totals;
}

function sameTotals(a: FarmTotals, b: FarmTotals): boolean {
  return (
    a.devices === b.devices &&
    a.busy === b.busy &&
    a.imagesPerMin === b.imagesPerMin &&
    a.vramUsedMb === b.vramUsedMb &&
    a.vramTotalMb === b.vramTotalMb
  );
}

/** Recomputes totals, keeping the old object when equal so totals subscribers stay quiet. */
function withTotals(state: FarmState, nodes: NodeSummary[], history: Record<string, DeviceSample[]>): FarmState {
  const totals = farmTotals(nodes);
  return { ...state, nodes, history, totals: sameTotals(totals, state.totals) ? state.totals : totals };
}

export const initialFarmState: FarmState = {
  nodes: [],
  history: {},
  totals: farmTotals([]),
  loaded: false,
  mode: { mode: "lan", farm: null },
  library: null,
};

/** modelLibrary, setModelLibrary or nodes.changed: the library, keeping the old object (and its packs' infos) when equal. */
export function applyLibrary(state: FarmState, library: ModelLibrary): FarmState {
  if (state.library && JSON.stringify(state.library) === JSON.stringify(library)) return state;
  const old = new Map((state.library?.packs ?? []).map((p) => [p.name, p]));
  const packs = library.packs.map((p) => {
    const before = old.get(p.name);
    return before && JSON.stringify(before) === JSON.stringify(p) ? before : p;
  });
  return { ...state, library: { ...library, packs } };
}

/**
 * nodes.changed or listNodes: the full list, with each device's 5-minute history
 * (which replaces what was kept). History of devices that no longer exist is dropped.
 */
export function applyNodes(state: FarmState, nodes: NodeSummary[]): FarmState {
  const previous = new Map(state.nodes.map((n) => [n.id, n]));
  const next = nodes.map((n) => {
    const old = previous.get(n.id);
    return old && JSON.stringify(old) === JSON.stringify(n) ? old : n;
  });
  const uuids = new Set(next.flatMap((n) => n.devices.map((d) => d.uuid)));
  const history = Object.fromEntries(Object.entries(state.history).filter(([uuid]) => uuids.has(uuid)));
  for (const node of nodes) Object.assign(history, node.history);
  return { ...withTotals(state, next, history), loaded: true };
}

/**
 * One node's 1 Hz telemetry: fresh readings replace that node's devices (other
 * nodes keep their objects, so their cards do not re-render) and each device's
 * new sample is appended to its history, which keeps the last 5 minutes.
 */
export function applyTelemetry(state: FarmState, event: Extract<UiEvent, { type: "telemetry" }>): FarmState {
  const nodes = state.nodes.map((n) => (n.id === event.nodeId ? { ...n, devices: event.devices } : n));
  const history = { ...state.history };
  for (const [uuid, sample] of Object.entries(event.samples)) {
    const samples = history[uuid] ?? [];
    if (samples.at(-1)?.at === sample.at) continue;
    history[uuid] = [...samples.slice(Math.max(0, samples.length + 1 - HISTORY_SAMPLES)), sample];
  }
  return withTotals(state, nodes, history);
}

export function reduceFarmEvent(state: FarmState, event: UiEvent): FarmState {
  switch (event.type) {
    case "nodes.changed": {
      const next = applyNodes(state, event.nodes);
      return event.library ? applyLibrary(next, event.library) : next;
    }
    case "telemetry":
      return applyTelemetry(state, event);
    default:
      return state;
  }
}

/** Nodes, devices and their history. Pure state: changes come from reducers applied by api/. */
export const useFarmStore = create<FarmState>()(() => initialFarmState);
