import type { DeviceReadings } from "../../shared/device";

/** What the simulated device is doing at the moment of a reading. */
export interface SimulatedActivity {
  nowMs: number;
  busy: boolean;
  /** Images in the running batch (0 when idle). */
  batchImages: number;
  /** Size of those images; working memory grows with pixel count. */
  width: number;
  height: number;
}

/** A demo-class model resident on the device, as on a real GPU after load. */
const MODEL_RESIDENT_MB = 1536;
/** Activations of one 512×512 image in flight. */
const WORKING_MB_PER_512_IMAGE = 768;
const IDLE_TEMPERATURE_C = 35;
const BUSY_TEMPERATURE_C = 70;
/** Seconds for the temperature to close 63% of the gap to its target, like a heatsink. */
const THERMAL_TIME_CONSTANT_S = 30;

/** A board power plausible for the memory size: ~390 W at 24 GB, capped at an H100's 700 W. */
function boardPowerW(vramTotalMb: number): number {
  return Math.min(700, Math.max(75, 100 + (vramTotalMb / 1024) * 12));
}

/** Deterministic noise in [0, 1) from a seed and a whole second, so readings wiggle but tests repeat. */
function noise(seed: number, second: number): number {
  let x = (seed ^ Math.imul(second, 0x9e3779b1)) >>> 0;
  x = Math.imul(x ^ (x >>> 16), 0x85ebca6b) >>> 0;
  x = Math.imul(x ^ (x >>> 13), 0xc2b2ae35) >>> 0;
  return ((x ^ (x >>> 16)) >>> 0) / 2 ** 32;
}

function hashSeed(text: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) hash = Math.imul(hash ^ text.charCodeAt(i), 0x01000193) >>> 0;
  return hash;
}

/**
 * Plausible telemetry for a simulated GPU so the farm UI and scheduler see realistic
 * figures: VRAM = resident model + per-image working memory, utilisation ~0–5% idle and
 * 85–98% busy, temperature drifting toward 35 °C idle / 70 °C busy, power following load.
 * Deterministic for the same uuid and the same sequence of activities.
 */
export class SimulatedReadings {
  private readonly seed: number;
  private temperatureC = IDLE_TEMPERATURE_C;
  private lastMs: number | null = null;

  constructor(
    uuid: string,
    private readonly vramTotalMb: number,
  ) {
    this.seed = hashSeed(uuid);
  }

  /**
   * The modelled board draw, watts: idle 8% of the board's power, rising with
   * utilisation to the board's power at 100%. What the node's energy meter reads
   * for a simulated device (ten times a second while it renders).
   */
  powerW(busy: boolean, nowMs: number): number {
    const jitter = noise(this.seed, Math.floor(nowMs / 1000));
    return this.drawW(Math.round(busy ? 85 + jitter * 13 : jitter * 5));
  }

  private drawW(utilizationPct: number): number {
    const maxPowerW = boardPowerW(this.vramTotalMb);
    const idlePowerW = maxPowerW * 0.08;
    return Math.round((idlePowerW + (maxPowerW - idlePowerW) * (utilizationPct / 100)) * 100) / 100;
  }

  read(activity: SimulatedActivity): DeviceReadings {
    const jitter = noise(this.seed, Math.floor(activity.nowMs / 1000));
    const utilizationPct = Math.round(activity.busy ? 85 + jitter * 13 : jitter * 5);

    const target = activity.busy ? BUSY_TEMPERATURE_C : IDLE_TEMPERATURE_C;
    const elapsedS = this.lastMs === null ? 0 : Math.max(0, activity.nowMs - this.lastMs) / 1000;
    this.temperatureC += (target - this.temperatureC) * (1 - Math.exp(-elapsedS / THERMAL_TIME_CONSTANT_S));
    this.lastMs = activity.nowMs;

    const images = activity.busy ? activity.batchImages : 0;
    const perImageMb = (WORKING_MB_PER_512_IMAGE * activity.width * activity.height) / (512 * 512);
    // A real card fails a batch that does not fit; the simulated one just reads as full.
    const vramUsedMb = Math.round(Math.min(this.vramTotalMb, MODEL_RESIDENT_MB + images * perImageMb));

    const powerW = this.drawW(utilizationPct);

    return {
      vramTotalMb: this.vramTotalMb,
      vramUsedMb,
      utilizationPct,
      temperatureC: Math.round(this.temperatureC),
      powerW,
    };
  }
}
