/** "about 12 s", "about 4 min", "about 1 h 20 min": ETAs are estimates, so minutes are enough past a minute. */
export function etaText(seconds: number): string {
  if (seconds < 1) return "under a second";
  if (seconds < 60) return `about ${Math.round(seconds)} s`;
  const minutes = Math.round(seconds / 60);
  if (minutes < 60) return `about ${minutes} min`;
  const hours = Math.floor(minutes / 60);
  return minutes % 60 === 0 ? `about ${hours} h` : `about ${hours} h ${minutes % 60} min`;
}
