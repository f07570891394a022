// Open the Backstage portal in headless Chromium through the Ingress, go to the catalog and
// wait until it lists an entity; save a screenshot either way. PORTAL_PATH=/create opens the
// scaffolder's page instead and waits until it shows the title of a template (ENTITY_NAME).
//
//   node portal.mjs BASE_URL ENTITY_NAME SCREENSHOT.png [HOST_HEADER]
//
// Prints one JSON line: {"ok": bool, "url": ..., "title": ..., "error": ...}. Exit 0 only when
// the entity's name is on the catalog page.
import { chromium } from 'playwright-core';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const [baseUrl, entity, screenshot, hostHeader] = process.argv.slice(2);
if (!baseUrl || !entity || !screenshot) {
  console.error('usage: node portal.mjs BASE_URL ENTITY_NAME SCREENSHOT.png [HOST_HEADER]');
  process.exit(2);
}
const executablePath = process.env.CHROMIUM || '/usr/bin/chromium';
const timeout = Number(process.env.PORTAL_TIMEOUT_MS || 90000);
const path = process.env.PORTAL_PATH || '/catalog';
const userDataDir = mkdtempSync(join(tmpdir(), 'backstage-k8s-chromium-'));

const result = { ok: false, url: null, title: null, error: null };
let context;
try {
  context = await chromium.launchPersistentContext(userDataDir, {
    executablePath,
    headless: true,
    viewport: { width: 1366, height: 900 },
    extraHTTPHeaders: hostHeader ? { Host: hostHeader } : undefined,
    args: [
      '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
      '--disable-dev-shm-usage',
    ],
  });
  const page = context.pages()[0] ?? (await context.newPage());
  page.setDefaultTimeout(timeout);
  await page.goto(`${baseUrl}${path}`, { waitUntil: 'domcontentloaded' });
  // The catalog table renders entity names as links to their pages; the scaffolder's page shows
  // each template's title on its card.
  const shown = path === '/catalog'
    ? page.getByRole('link', { name: entity, exact: true })
    : page.getByText(entity, { exact: true });
  await shown.first().waitFor({ state: 'visible' });
  result.ok = true;
} catch (error) {
  result.error = String(error && error.message ? error.message : error).split('\n')[0];
} finally {
  if (context) {
    const page = context.pages()[0];
    if (page) {
      result.url = page.url();
      result.title = await page.title().catch(() => null);
      await page.screenshot({ path: screenshot, fullPage: true }).catch((e) => {
        result.error = result.error || `screenshot: ${e.message}`;
      });
    }
    await context.close().catch(() => {});
  }
  rmSync(userDataDir, { recursive: true, force: true });
}
console.log(JSON.stringify(result));
process.exit(result.ok ? 0 : 1);
