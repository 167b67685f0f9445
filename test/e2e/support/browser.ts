import { existsSync, mkdtempSync } from "node:fs";
import { rm } from "node:fs/promises";
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
 * would try to reach outside switched off. `close()` removes that folder: its HTTP
 * cache holds every image the page loaded (up to a gigabyte after a bench run).
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
  const close = async () => {
    try {
      await context.close();
    } finally {
      await rm(userDataDir, { recursive: true, force: true, maxRetries: 3 });
    }
  };
  return { browser: context.browser() as Browser, page, close };
}
