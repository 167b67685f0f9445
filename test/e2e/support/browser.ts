import { existsSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type Browser, chromium, type Page } from "playwright-core";

const CHROMIUM = process.env.KILN_CHROMIUM ?? "/usr/bin/chromium";

/** Browser tests need Debian's Chromium (`apt-get install chromium`); they skip with this reason otherwise. */
export const BROWSER_SKIP_REASON = existsSync(CHROMIUM)
  ? null
  : `no Chromium at ${CHROMIUM} (apt-get install chromium)`;

/**
 * Debian's Chromium driven by playwright-core, headless, with a fresh user-data
 * folder per launch (like Bruno's fixtures) and the background networking that
 * would try to reach outside switched off.
 */
export async function launchBrowser(): Promise<{ browser: Browser; page: Page; close: () => Promise<void> }> {
  const userDataDir = mkdtempSync(join(tmpdir(), "kiln-chromium-"));
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM,
    headless: true,
    viewport: { width: 1440, height: 900 },
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
  const page = context.pages()[0] ?? (await context.newPage());
  return { browser: context.browser() as Browser, page, close: () => context.close() };
}
