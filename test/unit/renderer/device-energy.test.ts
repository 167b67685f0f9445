import { describe, expect, it } from "vitest";
import { energyReading, energyTitle } from "../../../renderer/model/device-energy";
import type { DeviceInfo } from "../../../shared/device";
import { energySummary, formatWh, jobEnergyText } from "../../../shared/energy-text";

const base = { uuid: "GPU-1", name: "RTX 4090" } as DeviceInfo;

describe("energy on the farm panel and in the queue", () => {
  it("shows a device's watt-hours per image, with where they come from and the idle draw left out", () => {
    const device: DeviceInfo = {
      ...base,
      energy: {
        source: "nvidia-smi",
        totalJ: 72_000,
        imagesJ: 36_000,
        images: 120,
        whPerImage: 0.0833,
        idlePowerW: 21.4,
      },
    };
    expect(energyReading(device)).toBe("0.083 Wh/image");
    expect(energyTitle(device)).toBe(
      "From nvidia-smi power draw; idle draw 21.4 W not charged. 120 images charged 10.0 Wh, 20.0 Wh drawn in all since the node started",
    );
  });

  it("says a device is not measured rather than show a figure", () => {
    expect(energyReading({ ...base, energy: null })).toBe("not measured");
    expect(energyReading({ ...base })).toBe("not measured");
    const fresh: DeviceInfo = {
      ...base,
      energy: { source: "simulated", totalJ: 10, imagesJ: 0, images: 0, whPerImage: null, idlePowerW: null },
    };
    expect(energyReading(fresh)).toBe("no images yet");
  });

  it("words a job's energy as kiln render ends and the queue shows it", () => {
    expect(formatWh(3.41)).toBe("3.41 Wh");
    expect(formatWh(0.284)).toBe("0.28 Wh");
    expect(jobEnergyText(12, { joules: 12_240, images: 12 })).toBe("12 images, 3.40 Wh (0.28 Wh/image)");
    expect(jobEnergyText(12, { joules: 3600, images: 8 })).toBe(
      "12 images, 1.00 Wh for the 8 measured (0.13 Wh/image); 4 on devices that measure none",
    );
    expect(jobEnergyText(1, { joules: 0, images: 0 })).toBe(
      "1 image, energy not measured (no device reports its draw)",
    );
    expect(energySummary({ joules: 36_000, images: 100 })).toBe("10.0 Wh (0.10 Wh/image)");
    expect(energySummary({ joules: 0, images: 0 })).toBeNull();
  });
});
