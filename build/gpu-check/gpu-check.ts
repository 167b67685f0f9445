/**
 * The GPU check that `npm run gpu:check:bundle -- DIR` packs (make-bundle.ts)
 * and DIR/run.sh starts, on a bare Linux machine with NVIDIA GPUs and no
 * network: a real kiln-node with `--devices all` on the bundle's tiny packs,
 * driven as a studio app drives it. Prints one JSON object: per device the
 * backend its worker really got (WebGPU over Vulkan, CUDA, or CPU and the
 * providers' reasons), the nvidia-smi readings the node parsed, kiln-demo
 * images/s at 512² and the tiny SD pack's ms per image. Progress goes to
 * stderr; the whole check keeps inside KILN_GPU_CHECK_BUDGET_S (420 s).
 */
import { fileURLToPath } from "node:url";
import { NodeClient } from "../../coordinator/nodes/node-client";
import type { DeviceInfo } from "../../shared/device";
import { NodeRenderDriver } from "../../test/bench/node-render-driver";
import { TINY_PACKS } from "../../test/fixtures/tiny-packs/write-tiny-packs";
import { startNode } from "../../test/support/kiln-node-process";

const PACKS = fileURLToPath(new URL("../../packs", import.meta.url));
const BUDGET_S = Number(process.env.KILN_GPU_CHECK_BUDGET_S ?? 420);
/** Images per measurement, after one batch of warm-up (the first run at a shape is slow). */
const DEMO_IMAGES = Number(process.env.KILN_GPU_CHECK_DEMO_IMAGES ?? 64);
const SD_IMAGES = Number(process.env.KILN_GPU_CHECK_SD_IMAGES ?? 8);
const BATCH = 4;

const say = (text: string) => process.stderr.write(`gpu-check: ${text}\n`);
const started = performance.now();
const leftS = () => BUDGET_S - (performance.now() - started) / 1000;

interface DeviceReport {
  uuid: string;
  name: string;
  kind: DeviceInfo["kind"];
  backend: DeviceInfo["backend"];
  /** What the worker said about its execution providers: why not CUDA or WebGPU, when it runs on the CPU. */
  providerNotes: string[];
  nvidiaSmi: Pick<DeviceInfo, "vramTotalMb" | "vramUsedMb" | "utilizationPct" | "temperatureC" | "powerW"> | null;
  kilnDemoImagesPerS512: number | null;
  tinySdMsPerImage: number | null;
  errors: string[];
}

/** Images per second over `count` images after a warm-up batch, on one device. */
async function measure(
  client: NodeClient,
  device: string,
  model: string,
  size: number,
  steps: number,
  count: number,
): Promise<{ perS: number; msPerImage: number }> {
  const prefix = `check-${model}-${device.slice(-8)}`.replace(/[^A-Za-z0-9_-]/g, "-");
  const driver = new NodeRenderDriver(client, { batch: BATCH, size, steps, model, device, prefix });
  await driver.render(BATCH);
  const { wallMs, images } = await driver.render(count);
  return { perS: images / (wallMs / 1000), msPerImage: wallMs / images };
}

async function main(): Promise<void> {
  const node = await startNode(["--devices", "all", "--models", PACKS, "--name", "gpu-check"]);
  const client = new NodeClient(node.url, node.token, node.pin);
  client.connect();
  try {
    const info = await client.info();
    say(
      `kiln-node ${info.version}: ${info.devices.length} device(s), models ${info.models.map((m) => m.name).join(", ")}`,
    );
    const ready = node.logs.filter((l) => l.msg === "worker ready");
    const devices: DeviceReport[] = [];
    for (const d of info.devices) {
      const worker = ready.find((l) => l.device === d.uuid);
      const report: DeviceReport = {
        uuid: d.uuid,
        name: d.name,
        kind: d.kind,
        backend: d.backend,
        providerNotes: Array.isArray(worker?.notes) ? (worker.notes as string[]) : [],
        nvidiaSmi:
          d.kind === "nvidia"
            ? {
                vramTotalMb: d.vramTotalMb,
                vramUsedMb: d.vramUsedMb,
                utilizationPct: d.utilizationPct,
                temperatureC: d.temperatureC,
                powerW: d.powerW,
              }
            : null,
        kilnDemoImagesPerS512: null,
        tinySdMsPerImage: null,
        errors: [],
      };
      devices.push(report);
      if (leftS() < 60) {
        report.errors.push("not measured: the check's time budget ran out");
        continue;
      }
      try {
        say(`${d.name} (${d.backend}): kiln-demo at 512x512`);
        report.kilnDemoImagesPerS512 = round((await measure(client, d.uuid, "kiln-demo", 512, 4, DEMO_IMAGES)).perS);
      } catch (error) {
        report.errors.push(`kiln-demo: ${(error as Error).message}`);
      }
      try {
        say(`${d.name} (${d.backend}): ${TINY_PACKS.sd}`);
        const sd = info.models.find((m) => m.name === TINY_PACKS.sd);
        if (!sd?.available)
          throw new Error(`the node does not offer ${TINY_PACKS.sd}: ${sd?.unavailableReason ?? "absent"}`);
        report.tinySdMsPerImage = round(
          (await measure(client, d.uuid, sd.name, sd.defaultWidth, sd.defaultSteps, SD_IMAGES)).msPerImage,
        );
      } catch (error) {
        report.errors.push(`${TINY_PACKS.sd}: ${(error as Error).message}`);
      }
    }
    const after = await client.info();
    for (const report of devices) {
      const now = after.devices.find((d) => d.uuid === report.uuid);
      if (now && report.nvidiaSmi) report.nvidiaSmi = { ...report.nvidiaSmi, utilizationPct: now.utilizationPct };
    }
    const noGpus = node.logs.find((l) => l.msg === "no NVIDIA GPUs visible");
    process.stdout.write(
      `${JSON.stringify({
        node: { version: info.version, protocol: info.protocol },
        nvidiaSmi: noGpus ? { ok: false, reason: String(noGpus.reason) } : { ok: true },
        seconds: Math.round((performance.now() - started) / 1000),
        devices,
      })}\n`,
    );
  } finally {
    client.close();
    await node.stop();
  }
}

function round(x: number): number {
  return Math.round(x * 100) / 100;
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    say(`failed: ${(error as Error).stack ?? String(error)}`);
    process.exit(1);
  },
);
