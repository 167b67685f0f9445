/** Which devices `--devices` asks the node to use. */
export type DeviceSelection =
  | { kind: "auto" }
  | { kind: "all" }
  | { kind: "cpu" }
  /** NVIDIA GPUs by nvidia-smi index, in the order given. */
  | { kind: "indices"; indices: number[] };

const FORMS = "use auto, all, cpu, or NVIDIA GPU indices as listed by nvidia-smi, e.g. --devices 0,2";

/** Parses `--devices auto|all|cpu|0,2`. */
export function parseDeviceSelection(text: string): DeviceSelection {
  const value = text.trim().toLowerCase();
  if (value === "auto" || value === "all" || value === "cpu") return { kind: value };
  const parts = value.split(",").map((part) => part.trim());
  const indices: number[] = [];
  for (const part of parts) {
    if (!/^\d+$/.test(part)) throw new Error(`--devices "${text}": "${part}" is not a GPU index; ${FORMS}`);
    const index = Number(part);
    if (indices.includes(index)) throw new Error(`--devices "${text}": GPU ${index} is listed twice; ${FORMS}`);
    indices.push(index);
  }
  return { kind: "indices", indices };
}
