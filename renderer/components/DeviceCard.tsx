import { memo } from "react";
import type { Backend, DeviceInfo } from "../../shared/device";
import { energyReading, energyTitle } from "../model/device-energy";
import { sharingText } from "../model/device-sharing";
import { yieldText } from "../model/device-yield";
import { useFarmStore } from "../stores/farm-store";
import { useQueueStore } from "../stores/queue-store";
import { Sparkline } from "./Sparkline";

const BACKEND_LABEL: Record<Backend, string> = { cuda: "cuda", webgpu: "webgpu", cpu: "cpu", sim: "simulated" };

/** No samples yet: one shared empty list, so the selector's answer is stable. */
const NO_SAMPLES: never[] = [];

function gb(mb: number): string {
  return (mb / 1024).toFixed(1);
}

function reading(value: number | null, unit: string): string {
  return value === null ? "—" : `${Math.round(value)} ${unit}`;
}

interface Props {
  device: DeviceInfo;
  /** The node's status: a lost node's devices are lost whatever they last said. */
  nodeLost: boolean;
  nodeName: string;
  /** This app's client id on the node: work for any other id is another studio app's. */
  self: string | null;
}

/** One GPU (or CPU): VRAM, load, temperature, power, throughput with its 5-minute history, current task, backend. */
export const DeviceCard = memo(function DeviceCard({ device, nodeLost, nodeName, self }: Props) {
  const history = useFarmStore((s) => s.history[device.uuid] ?? NO_SAMPLES);
  const status = nodeLost ? "lost" : device.state;
  const problem = nodeLost ? null : device.problem;
  const headingId = `device-${device.uuid}`;
  const vramTotal = device.vramTotalMb;
  const vramUsed = device.vramUsedMb;
  const label = device.kind === "cpu" ? "CPU" : `GPU ${device.index}`;
  const sharing = sharingText(device, self);
  // Work the A1111 API queued says so, with its client, as the queue does (the task id stays in the title).
  const apiClient = useQueueStore(
    (s) => s.jobs.find((j) => j.source && j.devices.includes(device.uuid))?.source?.client ?? null,
  );
  return (
    <article className={`device device-${status}`} aria-labelledby={headingId}>
      <header className="device-head">
        <h5 id={headingId} title={device.uuid}>
          <span className="visually-hidden">
            {nodeName} {label}:{" "}
          </span>
          {device.name}
        </h5>
        <span className={`badge backend backend-${device.backend ?? "none"}`}>
          {device.backend ? BACKEND_LABEL[device.backend] : "starting"}
        </span>
      </header>
      <p className="device-status">
        <span className={`dot dot-${status}`} aria-hidden="true" />
        {label} · {status}
      </p>
      {!nodeLost && device.state === "yielded" && <p className="device-yield">{yieldText(device)}</p>}
      {problem ? (
        // In place of the readings, which say little of a device with no worker: the provider's reasons are long.
        <p className="device-problem" title={problem}>
          cannot start: {problem}
        </p>
      ) : (
        <dl className="readings">
          <div className="reading reading-wide">
            <dt>VRAM</dt>
            <dd>
              {vramTotal !== null && vramUsed !== null ? (
                <>
                  <meter
                    min={0}
                    max={vramTotal}
                    value={vramUsed}
                    low={vramTotal * 0.6}
                    high={vramTotal * 0.8}
                    optimum={0}
                    aria-label="VRAM in use"
                  />
                  <span>
                    {gb(vramUsed)} / {gb(vramTotal)} GB
                  </span>
                </>
              ) : (
                "—"
              )}
            </dd>
          </div>
          <div className="reading reading-wide">
            <dt>Load</dt>
            <dd>
              {device.utilizationPct !== null ? (
                <>
                  <meter min={0} max={100} value={device.utilizationPct} aria-label="Utilisation" />
                  <span>{Math.round(device.utilizationPct)} %</span>
                </>
              ) : (
                "—"
              )}
            </dd>
          </div>
          <div className="reading">
            <dt>Temp</dt>
            <dd>{reading(device.temperatureC, "°C")}</dd>
          </div>
          <div className="reading">
            <dt>Power</dt>
            <dd>{reading(device.powerW, "W")}</dd>
          </div>
          <div className="reading">
            <dt>Energy</dt>
            <dd title={energyTitle(device)}>{energyReading(device)}</dd>
          </div>
          <div className="reading">
            <dt>Queue</dt>
            <dd>
              {device.queueDepth} / {device.queueLimit}
            </dd>
          </div>
          <div className="reading reading-wide">
            <dt>Images/min</dt>
            <dd className="throughput">
              <span className="throughput-value">
                {(device.imagesPerSec * 60).toFixed(device.imagesPerSec < 1 ? 1 : 0)}
              </span>
              <Sparkline samples={history} />
            </dd>
          </div>
          <div className="reading reading-wide">
            <dt>Task</dt>
            {sharing.task ? (
              <dd className="task task-other-app">{sharing.task}</dd>
            ) : (
              <dd className="task" title={device.currentTaskId ?? undefined}>
                {apiClient && device.currentTaskId ? `A1111 API (${apiClient})` : (device.currentTaskId ?? "idle")}
              </dd>
            )}
          </div>
          {sharing.share ? (
            <div className="reading reading-wide">
              <dt>Share</dt>
              <dd className="share">{sharing.share}</dd>
            </div>
          ) : null}
        </dl>
      )}
    </article>
  );
});
