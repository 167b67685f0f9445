import { describe, expect, it } from "vitest";
import { offHoursAt, parseHours } from "../../../../farm-node/yield/yield-hours";

// Local times: 2026-12-07 is a Monday.
const at = (day: number, hh: number, mm = 0) => new Date(2026, 11, 7 + day, hh, mm);
const MON = 0;
const FRI = 4;
const SAT = 5;
const SUN = 6;

describe("--hours, the weekly schedule a node keeps its GPUs free", () => {
  it("holds on the days and hours it names, and not outside them", () => {
    const hours = parseHours("Mon-Fri 09:00-18:00=off");
    expect(offHoursAt(hours, at(MON, 9))?.text).toBe("Mon-Fri 09:00-18:00=off");
    expect(offHoursAt(hours, at(FRI, 17, 59))).not.toBeNull();
    expect(offHoursAt(hours, at(FRI, 18))).toBeNull();
    expect(offHoursAt(hours, at(MON, 8, 59))).toBeNull();
    expect(offHoursAt(hours, at(SAT, 12))).toBeNull();
  });

  it("takes lists, daily, several entries, and ranges past midnight into the next day", () => {
    const hours = parseHours("Sat,Sun 10:00-14:00=off; daily 23:00-01:30=off");
    expect(offHoursAt(hours, at(SUN, 13))).not.toBeNull();
    expect(offHoursAt(hours, at(FRI, 13))).toBeNull();
    expect(offHoursAt(hours, at(FRI, 23, 30))?.text).toBe("daily 23:00-01:30=off");
    expect(offHoursAt(hours, at(SAT, 1, 0))).not.toBeNull();
    expect(offHoursAt(hours, at(SAT, 1, 30))).toBeNull();
    // A day range may wrap over the weekend.
    const weekend = parseHours("Fri-Mon 00:00-24:00=off");
    expect([MON, 1, 2, 3, FRI, SAT, SUN].map((d) => offHoursAt(weekend, at(d, 12)) !== null)).toEqual([
      true,
      false,
      false,
      false,
      true,
      true,
      true,
    ]);
  });

  it("says what is wrong, naming the entry and the expected form", () => {
    expect(() => parseHours("")).toThrow(/--hours "": no hours given; expected DAYS HH:MM-HH:MM=off/);
    expect(() => parseHours("Mon-Fri 09:00-18:00")).toThrow(/--hours "Mon-Fri 09:00-18:00": not understood/);
    expect(() => parseHours("Mon-Fri 09:00-18:00=on")).toThrow(/"=on" is not understood \(only =off\)/);
    expect(() => parseHours("Mon-Fry 09:00-18:00=off")).toThrow(/"Fry" is not a day/);
    expect(() => parseHours("Mon 9-18=off")).toThrow(/"9" is not a time \(HH:MM, 24-hour\)/);
    expect(() => parseHours("Mon 09:00-25:00=off")).toThrow(/"25:00" is not a time of day/);
    expect(() => parseHours("Mon 09:00-09:00=off")).toThrow(/the range is empty/);
    expect(() => parseHours("Mon-Fri 09:00-18:00=off; Sun")).toThrow(/--hours "Sun": not understood/);
  });
});
