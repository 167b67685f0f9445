import { z } from "zod";
import { EnergyModel } from "./energy-model";
import { type WorkKey, workUnits } from "./work-key";

export type { WorkKey } from "./work-key";

export interface Estimate {
  secondsPerImage: number;
  /** True once this device has run this exact work. */
  confident: boolean;
  /**
   * Where the figure comes from: this device on this work ("measured"), this device
   * on the model at another size or step count ("scaled"), the farm's typical device
   * on the model ("farm"), or nothing yet ("prior").
   */
  basis: "measured" | "scaled" | "farm" | "prior";
}

/** Weight of the newest observation: adapts within a few images when a GPU gets shared or throttles, yet smooths noise. */
const ALPHA = 0.3;
/** Weight of the newest observation in a device's spread: a spread needs more images than a mean to settle. */
const SPREAD_ALPHA = 0.1;
/** Images compared with an estimate before a device's spread is trusted. */
const SPREAD_SAMPLES = 3;
/** The prior when nobody has run a model yet: 1 s for 512×512 at 20 steps, a mid-range GPU on an SD-class model. */
const DEFAULT_SECONDS_PER_UNIT = 1 / (512 * 512 * 20);

interface Ewma {
  value: number;
  count: number;
}

interface ShapeEntry extends Ewma {
  width: number;
  height: number;
  steps: number;
  /** Hires fix's second pass: a hires image is a shape of its own, never mixed with plain ones of its first pass. */
  hires?: HiresShape;
}

/** What of a second pass decides its seconds: its size, its steps and the strength that picks how many run. */
interface HiresShape {
  width: number;
  height: number;
  steps: number;
  strength: number;
}

/** What one device taught us about one model. */
interface ModelKnowledge {
  /** Seconds per pixel-step over every size and step count it ran. */
  perUnit: Ewma;
  /** Squared relative deviation of each image's seconds from the estimate it had before (relearned each run). */
  spread: Ewma;
  /** By shapeKey. */
  shapes: Map<number, ShapeEntry>;
  /** Hires shapes, by hiresShapeKey (few: kept apart so the plain key stays a number). */
  hiresShapes: Map<string, ShapeEntry>;
  /** The shape asked for last: a pass asks for the same one over and over. */
  last?: ShapeEntry;
}

const EwmaJson = z.object({ value: z.number().positive(), count: z.number().int().positive() });
const SnapshotJson = z.object({
  version: z.literal(1),
  devices: z.array(
    z.object({
      key: z.string(),
      models: z.array(
        z.object({
          model: z.string(),
          perUnit: EwmaJson,
          shapes: z.array(
            EwmaJson.extend({
              width: z.number().int().positive(),
              height: z.number().int().positive(),
              steps: z.number().int().positive(),
              hires: z
                .object({
                  width: z.number().int().positive(),
                  height: z.number().int().positive(),
                  steps: z.number().int().positive(),
                  strength: z.number().positive(),
                })
                .optional(),
            }),
          ),
        }),
      ),
    }),
  ),
});
export type ThroughputSnapshot = z.infer<typeof SnapshotJson>;

/**
 * Seconds per image learned per (device, model, size, steps) from every image a
 * device returns, and per (device, model) how far single images stray from that.
 * What is unknown falls back, in order, to the same device on the same model at
 * another size (scaled by pixel-steps), to the farm's typical device on that
 * model, and to a fixed prior.
 */
export class ThroughputModel {
  private readonly devices = new Map<string, Map<string, ModelKnowledge>>();
  /** Per model, over devices: sum of their seconds per pixel-step and how many. The prior of a device new to it. */
  private readonly farm = new Map<string, { sum: number; devices: number }>();
  /** What each device's images cost in energy, learned alongside their seconds (not saved: a few images relearn it). */
  readonly energy = new EnergyModel();

  observe(deviceKey: string, work: WorkKey, secondsPerImage: number): void {
    if (!(secondsPerImage > 0 && Number.isFinite(secondsPerImage))) return;
    let models = this.devices.get(deviceKey);
    if (!models) {
      models = new Map();
      this.devices.set(deviceKey, models);
    }
    let knowledge = models.get(work.model);
    if (!knowledge) {
      knowledge = {
        perUnit: { value: 0, count: 0 },
        spread: { value: 0, count: 0 },
        shapes: new Map(),
        hiresShapes: new Map(),
      };
      models.set(work.model, knowledge);
    }
    let shape = findShape(knowledge, work);
    if (!shape) {
      shape = { width: work.width, height: work.height, steps: work.steps, value: 0, count: 0 };
      if (work.hires) {
        const { width, height, steps, strength } = work.hires;
        shape.hires = { width, height, steps, strength };
        knowledge.hiresShapes.set(hiresShapeKey(shape.hires, work), shape);
      } else knowledge.shapes.set(shapeKey(work), shape);
    }
    if (shape.count > 0) mix(knowledge.spread, (secondsPerImage / shape.value - 1) ** 2, SPREAD_ALPHA);
    mix(shape, secondsPerImage);
    const before = knowledge.perUnit.count > 0 ? knowledge.perUnit.value : null;
    mix(knowledge.perUnit, secondsPerImage / workUnits(work));
    this.updateFarm(work.model, before, knowledge.perUnit.value);
  }

  estimate(deviceKey: string, work: WorkKey): Estimate {
    const knowledge = this.devices.get(deviceKey)?.get(work.model);
    const secondsPerImage = this.secondsPerImage(deviceKey, work);
    if (knowledge) {
      const measured = findShape(knowledge, work) !== undefined;
      return { secondsPerImage, confident: measured, basis: measured ? "measured" : "scaled" };
    }
    return { secondsPerImage, confident: false, basis: this.farm.has(work.model) ? "farm" : "prior" };
  }

  /** The estimate's seconds alone: scheduling passes ask for every device and task, so no object is made. */
  secondsPerImage(deviceKey: string, work: WorkKey): number {
    const knowledge = this.devices.get(deviceKey)?.get(work.model);
    if (!knowledge) return this.typicalSecondsPerImage(work);
    return findShape(knowledge, work)?.value ?? knowledge.perUnit.value * workUnits(work);
  }

  /**
   * How far one image's seconds on the device stray from the estimate, as a
   * fraction of it (one standard deviation): per-image noise, and drift the
   * estimate has not caught up with yet. 0 until a few images were compared.
   */
  spread(deviceKey: string, model: string): number {
    const spread = this.devices.get(deviceKey)?.get(model)?.spread;
    return spread && spread.count >= SPREAD_SAMPLES ? Math.sqrt(spread.value) : 0;
  }

  /** Seconds per image on the farm's typical device: what an unknown device is assumed to take. */
  typicalSecondsPerImage(work: WorkKey): number {
    const farm = this.farm.get(work.model);
    const perUnit = farm && farm.devices > 0 ? farm.sum / farm.devices : DEFAULT_SECONDS_PER_UNIT;
    return perUnit * workUnits(work);
  }

  toJSON(): ThroughputSnapshot {
    return {
      version: 1,
      devices: [...this.devices].map(([key, models]) => ({
        key,
        models: [...models].map(([model, k]) => ({
          model,
          perUnit: { value: k.perUnit.value, count: k.perUnit.count },
          shapes: [...k.shapes.values(), ...k.hiresShapes.values()].map((s) => ({ ...s })),
        })),
      })),
    };
  }

  /** Throws on a snapshot of another shape; the caller then starts afresh. */
  static fromJSON(data: unknown): ThroughputModel {
    const snapshot = SnapshotJson.parse(data);
    const model = new ThroughputModel();
    for (const device of snapshot.devices) {
      const models = new Map<string, ModelKnowledge>();
      for (const m of device.models) {
        const shapes = new Map(m.shapes.filter((s) => !s.hires).map((s) => [shapeKey(s), { ...s }]));
        const hiresShapes = new Map(
          m.shapes.flatMap((s) => (s.hires ? [[hiresShapeKey(s.hires, s), { ...s }] as const] : [])),
        );
        models.set(m.model, { perUnit: { ...m.perUnit }, spread: { value: 0, count: 0 }, shapes, hiresShapes });
        model.updateFarm(m.model, null, m.perUnit.value);
      }
      model.devices.set(device.key, models);
    }
    return model;
  }

  private updateFarm(model: string, before: number | null, after: number): void {
    const farm = this.farm.get(model) ?? { sum: 0, devices: 0 };
    farm.sum += after - (before ?? 0);
    if (before === null) farm.devices++;
    this.farm.set(model, farm);
  }
}

function mix(ewma: Ewma, x: number, alpha = ALPHA): void {
  ewma.value = ewma.count === 0 ? x : ewma.value + alpha * (x - ewma.value);
  ewma.count++;
}

function findShape(knowledge: ModelKnowledge, work: WorkKey): ShapeEntry | undefined {
  if (work.hires) return knowledge.hiresShapes.get(hiresShapeKey(work.hires, work));
  const last = knowledge.last;
  if (last && last.width === work.width && last.height === work.height && last.steps === work.steps) return last;
  const shape = knowledge.shapes.get(shapeKey(work));
  if (shape) knowledge.last = shape;
  return shape;
}

function hiresShapeKey(hires: HiresShape, first: Pick<WorkKey, "width" | "height" | "steps">): string {
  return `${shapeKey(first)}:${hires.width}x${hires.height}:${hires.steps}:${hires.strength}`;
}

/** One number per shape, no string building on the hot path; exact for edges below 8192 and steps below 1024. */
function shapeKey(work: Pick<WorkKey, "width" | "height" | "steps">): number {
  return (work.width * 8192 + work.height) * 1024 + work.steps;
}
