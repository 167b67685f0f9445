/**
 * A discrete-event simulation of a farm run by the real scheduler and throughput
 * model: a virtual clock, no sleeps. The coordinator side does what the real one
 * does: a pass on every result and on a 100 ms tick, tasks sent over a network,
 * throughput observed per image, twins cancelled when the first result lands, a
 * lost node's images back in the queue once its lease runs out.
 */
import {
  type Attempt,
  type Decision,
  type DeviceView,
  type InflightTaskView,
  type OutstandingImage,
  schedule,
} from "../../coordinator/scheduling/scheduler";
import { ThroughputModel } from "../../coordinator/scheduling/throughput-model";
import type { WorkKey } from "../../coordinator/scheduling/work-key";
import { batchSeconds, NETWORK_S, type SimDevice, type SimImage, type SimNode, seededRandom } from "./sim-farm";

export interface FaultPlan {
  nodeIds: readonly string[];
  /** When the nodes vanish, seconds into the run. */
  atS: number;
  /** How long the coordinator waits for a silent node before its images go back to the queue. */
  leaseS: number;
}

export interface KilnRunOptions {
  nodes: readonly SimNode[];
  images: readonly SimImage[];
  seed: number;
  faults?: FaultPlan;
  /** Pending images shown to each pass, as the coordinator's window. */
  window?: number;
  targetTaskSeconds?: number;
  /** Pipeline depth per device. */
  maxInflight?: number;
}

export interface KilnRunResult {
  makespanS: number;
  passes: number;
  decisions: number;
  /** Wall time spent inside schedule(), ms. */
  scheduleMs: number;
  duplicatedImages: number;
  /** Device key → images whose stored result came from it. */
  imagesByDevice: Map<string, number>;
  model: ThroughputModel;
}

const TICK_S = 0.1;

interface NodeTask {
  id: string;
  device: DeviceRun;
  work: WorkKey;
  images: SimImage[];
  view: InflightTaskView & { imageIds: string[] };
  cancelled: boolean;
}

interface DeviceRun {
  sim: SimDevice;
  view: DeviceView & { inflight: InflightTaskView[] };
  fifo: NodeTask[];
  running: NodeTask | null;
  lost: boolean;
}

interface Outstanding extends OutstandingImage {
  attempts: Attempt[];
  image: SimImage;
}

/** Min-heap of timed callbacks; ties run in the order they were scheduled. */
class EventQueue {
  private readonly heap: { t: number; seq: number; run: () => void }[] = [];
  private seq = 0;
  now = 0;

  at(t: number, run: () => void): void {
    const heap = this.heap;
    heap.push({ t, seq: this.seq++, run });
    let i = heap.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!this.before(i, parent)) break;
      [heap[i], heap[parent]] = [heap[parent] as (typeof heap)[0], heap[i] as (typeof heap)[0]];
      i = parent;
    }
  }

  /** Runs the next event; false when none is left. */
  step(): boolean {
    const heap = this.heap;
    const top = heap[0];
    if (!top) return false;
    const last = heap.pop() as (typeof heap)[0];
    if (heap.length > 0) {
      heap[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < heap.length && this.before(l, m)) m = l;
        if (r < heap.length && this.before(r, m)) m = r;
        if (m === i) break;
        [heap[i], heap[m]] = [heap[m] as (typeof heap)[0], heap[i] as (typeof heap)[0]];
        i = m;
      }
    }
    this.now = top.t;
    top.run();
    return true;
  }

  private before(a: number, b: number): boolean {
    const x = this.heap[a] as (typeof this.heap)[0];
    const y = this.heap[b] as (typeof this.heap)[0];
    return x.t < y.t || (x.t === y.t && x.seq < y.seq);
  }
}

export function runKiln(opts: KilnRunOptions): KilnRunResult {
  const random = seededRandom(opts.seed);
  const window = opts.window ?? 2000;
  const model = new ThroughputModel();
  const events = new EventQueue();
  const devices = opts.nodes.flatMap((node) =>
    node.devices.map(
      (sim): DeviceRun => ({
        sim,
        view: {
          key: sim.key,
          nodeId: sim.nodeId,
          uuid: sim.uuid,
          models: ["sim-model"],
          batchLimit: sim.batchLimit,
          inflight: [],
          maxInflight: opts.maxInflight ?? 2,
          accepting: true,
          blockedModels: new Set(),
          share: 1,
        },
        fifo: [],
        running: null,
        lost: false,
      }),
    ),
  );
  let views = devices.map((d) => d.view);
  let pending = [...opts.images];
  const outstanding = new Map<string, Outstanding>();
  const tasksOfImage = new Map<string, Set<NodeTask>>();
  const done = new Set<string>();
  const result: KilnRunResult = {
    makespanS: Number.NaN,
    passes: 0,
    decisions: 0,
    scheduleMs: 0,
    duplicatedImages: 0,
    imagesByDevice: new Map(),
    model,
  };
  let taskNo = 0;

  const pass = (): void => {
    const started = performance.now();
    const decisions = schedule({
      now: events.now * 1000,
      devices: views,
      pending: pending.length > window ? pending.slice(0, window) : pending,
      outstanding: [...outstanding.values()],
      model,
      ...(opts.targetTaskSeconds ? { targetTaskSeconds: opts.targetTaskSeconds } : {}),
    });
    result.scheduleMs += performance.now() - started;
    result.passes++;
    result.decisions += decisions.length;
    if (decisions.length === 0) return;
    const assigned = new Set<string>();
    for (const decision of decisions) {
      if (decision.kind === "assign") for (const image of decision.images) assigned.add(image.id);
      send(decision);
    }
    if (assigned.size > 0) pending = pending.filter((image) => !assigned.has(image.id));
  };

  const send = (decision: Decision<SimImage, Outstanding>): void => {
    const device = devices.find((d) => d.view.key === decision.deviceKey) as DeviceRun;
    const images = decision.kind === "assign" ? decision.images : decision.images.map((o) => o.image);
    if (decision.kind === "duplicate") result.duplicatedImages += images.length;
    const first = images[0] as SimImage;
    const work = { model: first.model, width: first.width, height: first.height, steps: first.steps };
    const id = `t${++taskNo}`;
    const view = {
      taskId: id,
      imageIds: images.map((i) => i.id),
      work,
      startedAt: events.now * 1000,
      runningSince: null as number | null,
    };
    const task: NodeTask = { id, device, work, images, view, cancelled: false };
    device.view.inflight.push(view);
    for (const image of images) {
      let entry = outstanding.get(image.id);
      if (!entry) {
        entry = { id: image.id, work, attempts: [], image };
        outstanding.set(image.id, entry);
      }
      entry.attempts.push({ deviceKey: device.view.key, nodeId: device.view.nodeId, startedAt: events.now * 1000 });
      let tasks = tasksOfImage.get(image.id);
      if (!tasks) {
        tasks = new Set();
        tasksOfImage.set(image.id, tasks);
      }
      tasks.add(task);
    }
    events.at(events.now + NETWORK_S, () => arrive(task));
  };

  const arrive = (task: NodeTask): void => {
    if (task.device.lost || task.cancelled) return;
    task.device.fifo.push(task);
    if (!task.device.running) startNext(task.device);
  };

  const startNext = (device: DeviceRun): void => {
    const task = device.fifo.shift();
    device.running = task ?? null;
    if (!task) return;
    const seconds = batchSeconds(device.sim, task.work, task.images.length, random);
    events.at(events.now + NETWORK_S, () => {
      if (!device.lost) task.view.runningSince = events.now * 1000;
    });
    events.at(events.now + seconds, () => {
      if (device.lost || device.running !== task) return; // lost, or cancelled while running
      startNext(device);
      events.at(events.now + NETWORK_S, () => results(task, seconds));
    });
  };

  const results = (task: NodeTask, seconds: number): void => {
    const { device } = task;
    if (!device.view.inflight.includes(task.view)) return; // cancelled or lost meanwhile
    device.view.inflight.splice(device.view.inflight.indexOf(task.view), 1);
    for (const image of task.images) {
      model.observe(device.view.key, task.work, seconds / task.images.length);
      tasksOfImage.get(image.id)?.delete(task);
      if (done.has(image.id)) continue;
      done.add(image.id);
      outstanding.delete(image.id);
      result.imagesByDevice.set(device.view.key, (result.imagesByDevice.get(device.view.key) ?? 0) + 1);
      for (const twin of tasksOfImage.get(image.id) ?? []) {
        twin.view.imageIds = twin.view.imageIds.filter((id) => id !== image.id);
        if (twin.view.imageIds.length === 0) cancel(twin);
      }
      tasksOfImage.delete(image.id);
    }
    if (done.size === opts.images.length) result.makespanS = events.now;
    else pass();
  };

  /** The node drops the task, or stops it between steps, when the cancel lands; the coordinator forgets it when told. */
  const cancel = (task: NodeTask): void => {
    const { device } = task;
    task.cancelled = true;
    events.at(events.now + NETWORK_S, () => {
      if (device.lost) return;
      if (device.running === task) startNext(device);
      else device.fifo = device.fifo.filter((t) => t !== task);
      events.at(events.now + NETWORK_S, () => {
        const at = device.view.inflight.indexOf(task.view);
        if (at >= 0) device.view.inflight.splice(at, 1);
        pass();
      });
    });
  };

  const tick = (): void => {
    if (done.size === opts.images.length) return;
    pass();
    events.at(events.now + TICK_S, tick);
  };

  if (opts.faults) {
    const faults = opts.faults;
    const lost = devices.filter((d) => faults.nodeIds.includes(d.view.nodeId));
    events.at(faults.atS, () => {
      for (const device of lost) {
        device.lost = true;
        device.fifo = [];
        device.running = null;
      }
    });
    events.at(faults.atS + faults.leaseS, () => {
      views = views.filter((v) => !faults.nodeIds.includes(v.nodeId));
      for (const device of lost) {
        for (const view of device.view.inflight) {
          for (const id of view.imageIds) {
            for (const task of tasksOfImage.get(id) ?? []) if (task.view === view) tasksOfImage.get(id)?.delete(task);
            const entry = outstanding.get(id) as Outstanding;
            entry.attempts = entry.attempts.filter((a) => a.deviceKey !== device.view.key);
            if (entry.attempts.length > 0) continue;
            outstanding.delete(id);
            pending.push(entry.image);
          }
        }
        device.view.inflight = [];
      }
      pending.sort((a, b) => a.seq - b.seq);
      pass();
    });
  }

  events.at(0, tick);
  while (Number.isNaN(result.makespanS) && events.step()) {
    if (events.now > 3600) throw new Error("simulation ran past an hour of virtual time: the scheduler stalled");
  }
  return result;
}
