import type { DeviceInfo } from "../../../shared/device";
import type { ModelInfo } from "../../../shared/node-info";
import type { ImageSummary, JobSummary, NodeSummary } from "../../../shared/ui-api";

/** Contract-shaped values for renderer tests; each takes the fields a test cares about. */
export function job(over: Partial<JobSummary> & { id: string }): JobSummary {
  return {
    name: `job ${over.id}`,
    state: "queued",
    priority: 0,
    position: 0,
    model: "kiln-demo",
    width: 512,
    height: 512,
    createdAt: 1,
    finishedAt: null,
    counts: { total: 4, queued: 4, running: 0, done: 0, failed: 0, cancelled: 0 },
    etaS: null,
    devices: [],
    lastError: null,
    stalled: null,
    grid: null,
    ...over,
  };
}

export function image(over: Partial<ImageSummary> & { id: string; jobId: string; index: number }): ImageSummary {
  return {
    state: "queued",
    prompt: "a lighthouse at dusk",
    negativePrompt: "",
    seed: 1000 + over.index,
    model: "kiln-demo",
    width: 512,
    height: 512,
    steps: 4,
    guidance: 1,
    sampler: null,
    gridX: null,
    gridY: null,
    path: null,
    nodeId: null,
    device: null,
    error: null,
    ...over,
  };
}

export function device(over: Partial<DeviceInfo> & { uuid: string }): DeviceInfo {
  return {
    index: 0,
    loadedModels: [],
    sharing: { current: null, windowS: 300, clients: [] },
    name: "Simulated GPU",
    kind: "simulated",
    simulated: true,
    backend: "sim",
    state: "ready",
    queueDepth: 0,
    queueLimit: 4,
    currentTaskId: null,
    imagesTotal: 0,
    imagesPerSec: 0,
    vramTotalMb: 24_576,
    vramUsedMb: 1024,
    utilizationPct: 0,
    temperatureC: 40,
    powerW: 80,
    ...over,
  };
}

export function model(over: Partial<ModelInfo> & { name: string }): ModelInfo {
  return {
    kind: "demo",
    hash: "a".repeat(64),
    demo: true,
    description: "",
    defaultSteps: 4,
    defaultWidth: 512,
    defaultHeight: 512,
    defaultGuidance: 1,
    defaultSampler: "Euler",
    maxWidth: 2048,
    maxHeight: 2048,
    maxSteps: 200,
    sizeMultiple: 8,
    sizeBytes: 0,
    available: true,
    unavailableReason: null,
    ...over,
  };
}

export function node(over: Partial<NodeSummary> & { id: string }): NodeSummary {
  return {
    fingerprint: null,
    name: `node ${over.id}`,
    host: "10.0.0.7",
    port: 7878,
    status: "online",
    version: "0.1.0",
    local: false,
    drained: false,
    devices: [],
    you: null,
    history: {},
    models: [model({ name: "kiln-demo" })],
    problem: null,
    blockedModels: [],
    ...over,
  };
}
