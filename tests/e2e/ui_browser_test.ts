/**
 * `fabricd ui` in a real browser (issue 13): Debian's chromium driven by
 * puppeteer-core against a local fabric of real processes.
 * FABRIC_UI_SCREENSHOT=1 saves docs/ui.png (the screenshot of docs/observability.md).
 */
import assert from "node:assert/strict";
import puppeteer, { type Browser, type Page } from "puppeteer-core";
import type { LocalFabric } from "../../src/cli/local_fabric.ts";
import type { SpawnResult } from "../../src/types/mod.ts";
import { killQuietly, withLocalFabric } from "./_fabric.ts";
import { onPath, skipPolicy } from "./_prereq.ts";
import { putTasks, spawnRole, startUi } from "./_ui.ts";

const CHROMIUM = "/usr/bin/chromium";
const policy = skipPolicy(
  (await onPath(CHROMIUM))
    ? { ok: true }
    : { ok: false, reason: "missing chromium; install with: apt-get install -y chromium" },
  "The browser test of fabricd ui",
);

async function launch(): Promise<{ browser: Browser; profile: string }> {
  const profile = await Deno.makeTempDir({ prefix: "fabricd-chromium-" });
  const browser = await puppeteer.launch({
    executablePath: CHROMIUM,
    headless: true,
    userDataDir: profile,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-background-networking",
      "--disable-component-update",
      "--no-first-run",
      "--disable-sync",
    ],
  });
  return { browser, profile };
}

/** The task chart shows the depth of a queue that no agent reads. */
async function checkTaskChart(page: Page, local: LocalFabric): Promise<void> {
  assert.ok(await page.$("svg#task-chart"), "the task chart");
  const queue = await spawnRole(local, "queue");
  await putTasks(local, queue, 7);
  await page.waitForSelector('svg#task-chart[data-depth="7"] polyline.series-depth', {
    timeout: 30_000,
  });
  assert.match(await page.$eval("#task-now", (e) => e.textContent ?? ""), /depth 7\b/);
}

Deno.test({
  name:
    "fabricd ui shows every service, a SIGKILLed one DEAD then ALIVE incarnation 2 without a reload, the queue's depth on the task chart, and only the login page without a token",
  ignore: policy.skip,
  fn: async () => {
    policy.assertReady();
    await withLocalFabric(async (local, dir) => {
      const spawned = await local.client.call<SpawnResult>(local.spawner, {
        method: "POST",
        path: "/v1/spawn",
        body: { role: "spawner" },
      });
      const ui = await startUi(dir);
      const { browser, profile } = await launch();
      try {
        const page = await browser.newPage();
        await page.setViewport({ width: 1100, height: 650 });
        for (
          const url of [`${ui.base}/`, `${ui.base}/login?token=wrong`, `${ui.base}/api/services`]
        ) {
          const answer = await page.goto(url);
          assert.equal(answer?.status(), 401, url);
          const html = await page.content();
          assert.doesNotMatch(html, /spw-[0-9a-f]{8}|reg-[0-9a-f]{8}/, `no fabric data at ${url}`);
        }
        await page.goto(`${ui.base}/`);
        assert.ok(await page.$("#login"), "the login page");
        await page.goto(ui.loginUrl);
        assert.equal(new URL(page.url()).pathname, "/");
        const records = await local.registry.list();
        for (const r of records) {
          await page.waitForSelector(`tr[data-id="${r.id}"]`, { timeout: 30_000 });
        }
        await page.waitForFunction(
          'document.querySelector("#status")?.textContent === "live"',
          { timeout: 30_000 },
        );
        // A marker that a reload would wipe.
        await page.evaluate(() => ((globalThis as unknown as { marker: number }).marker = 42));
        const pid = records.find((r) => r.id === spawned.id)!.pid;
        killQuietly(pid);
        await page.waitForSelector(`tr[data-id="${spawned.id}"][data-state="DEAD"]`, {
          timeout: 30_000,
        });
        await page.waitForSelector(
          `tr[data-id="${spawned.id}"][data-state="ALIVE"][data-incarnation="2"]`,
          { timeout: 60_000 },
        );
        const marker = await page.evaluate(() =>
          (globalThis as unknown as { marker?: number }).marker
        );
        assert.equal(marker, 42, "the page was not reloaded");
        // Heartbeat ages stay current (they only grew from the page's load: the
        // change stream carries no heartbeats).
        const registryId = records.find((r) => r.role === "registry")!.id;
        await new Promise((r) => setTimeout(r, 8000));
        await page.waitForFunction(
          `(() => {
            const cell = document.querySelector('tr[data-id="${registryId}"] td:nth-child(6)');
            const text = cell?.textContent ?? "";
            return text.endsWith("s ago") && parseFloat(text) < 4;
          })()`,
          { timeout: 10_000, polling: 500 },
        );
        // The table is rendered anew on every change the page hears of, so a
        // row found by one call can be gone by the next (puppeteer's click
        // failed with "Node is detached from document"): the page finds and
        // clicks the row in one step, again until the detail shows.
        const shown =
          '(document.querySelector("#detail")?.textContent ?? "").includes("RESTARTING")';
        await page.waitForFunction(
          `${shown} || (document.querySelector('tr[data-id="${spawned.id}"]')?.click(), ${shown})`,
          { timeout: 30_000, polling: 500 },
        );
        await checkTaskChart(page, local);
        if (Deno.env.get("FABRIC_UI_SCREENSHOT") === "1") {
          await page.screenshot({
            path: new URL("../../docs/ui.png", import.meta.url).pathname,
            fullPage: true,
          });
        }
      } finally {
        await browser.close().catch(() => {});
        await ui.stop();
        await Deno.remove(profile, { recursive: true }).catch(() => {});
      }
    }, { heartbeatMs: 500 });
  },
});
