/**
 * `--hours "Mon-Fri 09:00-18:00=off"`: a weekly schedule of hours the node keeps
 * its GPUs free for their owner (a Flamenco-style sleep schedule). Entries are
 * separated by `;`; days are Mon Tue Wed Thu Fri Sat Sun, ranges (`Mon-Fri`,
 * `Fri-Mon` wraps), lists (`Sat,Sun`) or `daily`; a time range that ends before it
 * starts runs past midnight into the next day (`Mon-Fri 22:00-06:00=off`). Hours
 * are the node's local time. Only `=off` is understood: outside every entry the
 * node renders (and yields to its owner's programs as `--yield` says).
 */

export interface HoursEntry {
  /** Days the range starts on, 0 = Sunday as Date#getDay. */
  days: ReadonlySet<number>;
  /** Minutes after midnight. */
  startMin: number;
  endMin: number;
  /** The entry as written, for messages. */
  text: string;
}

export type HoursSchedule = readonly HoursEntry[];

const DAY_NAMES = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"] as const;

const USAGE =
  'expected DAYS HH:MM-HH:MM=off, several separated by ";", e.g. "Mon-Fri 09:00-18:00=off; Sat 10:00-14:00=off"';

function invalid(entry: string, why: string): Error {
  return new Error(`--hours "${entry}": ${why}; ${USAGE}`);
}

function dayIndex(entry: string, name: string): number {
  const index = DAY_NAMES.indexOf(name.toLowerCase().slice(0, 3) as (typeof DAY_NAMES)[number]);
  if (index < 0 || name.length < 3)
    throw invalid(entry, `"${name}" is not a day (Mon Tue Wed Thu Fri Sat Sun, or daily)`);
  return index;
}

function parseDays(entry: string, text: string): Set<number> {
  if (/^(daily|\*|every ?day)$/i.test(text)) return new Set([0, 1, 2, 3, 4, 5, 6]);
  const days = new Set<number>();
  for (const part of text.split(",")) {
    const [from, to, extra] = part.split("-");
    if (from === undefined || from === "" || extra !== undefined)
      throw invalid(entry, `"${part}" is not a day or a range of days`);
    const first = dayIndex(entry, from.trim());
    if (to === undefined) {
      days.add(first);
      continue;
    }
    const last = dayIndex(entry, to.trim());
    for (let d = first; ; d = (d + 1) % 7) {
      days.add(d);
      if (d === last) break;
    }
  }
  return days;
}

function parseTime(entry: string, text: string): number {
  const match = /^(\d{1,2}):(\d{2})$/.exec(text);
  if (!match) throw invalid(entry, `"${text}" is not a time (HH:MM, 24-hour)`);
  const hours = Number(match[1]);
  const minutes = Number(match[2]);
  if (hours > 24 || minutes > 59 || (hours === 24 && minutes > 0))
    throw invalid(entry, `"${text}" is not a time of day (00:00 to 24:00)`);
  return hours * 60 + minutes;
}

/** Parses `--hours`; throws an Error naming the entry and what is wrong with it. */
export function parseHours(text: string): HoursSchedule {
  const entries = text
    .split(";")
    .map((e) => e.trim())
    .filter((e) => e !== "");
  if (entries.length === 0) throw invalid(text, "no hours given");
  return entries.map((entry) => {
    const match = /^(.+?)\s+(\S+)\s*-\s*(\S+?)\s*=\s*(\S+)$/.exec(entry);
    if (!match) throw invalid(entry, "not understood");
    const [, daysText = "", startText = "", endText = "", state = ""] = match;
    if (state.toLowerCase() !== "off") throw invalid(entry, `"=${state}" is not understood (only =off)`);
    const startMin = parseTime(entry, startText);
    const endMin = parseTime(entry, endText);
    if (startMin === endMin) throw invalid(entry, "the range is empty (it starts when it ends)");
    return { days: parseDays(entry, daysText.replace(/\s+/g, "")), startMin, endMin, text: entry };
  });
}

/** The entry whose hours hold `at` (the node's local time), or null. */
export function offHoursAt(schedule: HoursSchedule, at: Date): HoursEntry | null {
  const day = at.getDay();
  const minute = at.getHours() * 60 + at.getMinutes();
  for (const entry of schedule) {
    if (entry.startMin < entry.endMin) {
      if (entry.days.has(day) && minute >= entry.startMin && minute < entry.endMin) return entry;
    } else {
      // Past midnight: the evening part on its days, the morning part on the day after.
      if (entry.days.has(day) && minute >= entry.startMin) return entry;
      if (entry.days.has((day + 6) % 7) && minute < entry.endMin) return entry;
    }
  }
  return null;
}
