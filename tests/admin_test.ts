/**
 * The admin console in a real browser: Debian's headless Chromium driven by playwright-core.
 * Two cluster nodes with an API key, ffmpeg publishing to node 1, a player on node 2 so the
 * stream is relayed there; node 2's /admin must ask for the key, then show both nodes Online,
 * the stream, the relay and the cluster map, and its preview player must play the stream.
 * A screenshot goes to test-artifacts/admin.png.
 *
 * Chromium missing is a failure, not a skip: `apt-get install -y chromium`.
 */

import assert from "node:assert/strict";
import { type BrowserContext, chromium, type Page } from "playwright-core";
import { startClusterNode } from "./helpers/cluster.ts";
import { publish, readFlv } from "./helpers/media.ts";
import { ARTIFACTS_DIR } from "./helpers/node.ts";
import { waitFor } from "./helpers/wait.ts";

const CHROMIUM = "/usr/bin/chromium";
const CHROMIUM_FLAGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];
const UI_TIMEOUT = 30_000;

function requireChromium(): void {
  try {
    if (Deno.statSync(CHROMIUM).isFile) return;
  } catch {
    // reported below
  }
  throw new Error(
    `Chromium not found at ${CHROMIUM}: the admin console test needs Debian's chromium ` +
      `(apt-get update && apt-get install -y chromium)`,
  );
}

/** A fresh profile in a temp dir; closing the handle closes the browser and removes the dir. */
async function launchBrowser(): Promise<{ context: BrowserContext } & AsyncDisposable> {
  requireChromium();
  const profile = await Deno.makeTempDir({ prefix: "admin-test-chromium-" });
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: CHROMIUM_FLAGS,
    viewport: { width: 1280, height: 860 },
    timeout: UI_TIMEOUT,
  });
  return {
    context,
    async [Symbol.asyncDispose]() {
      await context.close().catch(() => {});
      await Deno.remove(profile, { recursive: true }).catch(() => {});
    },
  };
}

/**
 * Polls a JS expression in the page until it is truthy. (Not `page.waitForFunction`: its
 * polling evals in the page, which the console's CSP forbids; CDP evaluation is exempt.)
 */
async function pageUntil(page: Page, expression: string, what: string): Promise<void> {
  await waitFor(async () => (await page.evaluate<unknown>(expression)) === true, UI_TIMEOUT, {
    message: what,
    intervalMs: 200,
  });
}

async function openTab(page: Page, name: string): Promise<void> {
  await page.click(`nav [data-tab="${name}"]`);
  await page.waitForSelector(`#tab-${name}:not([hidden])`, { timeout: UI_TIMEOUT });
}

Deno.test({
  name: "admin console: key prompt, nodes, streams, relay, cluster map and a playing preview",
  // playwright keeps its driver pipes and timers past the test body; the browser is closed.
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    requireChromium();
    const key = `admin-key-${crypto.randomUUID()}`;
    await using n1 = await startClusterNode({ ip: "127.0.0.3", serverId: "admin-n1", apiKey: key });
    await using n2 = await startClusterNode({
      ip: "127.0.0.4",
      serverId: "admin-n2",
      seeds: [n1.address],
      apiKey: key,
    });
    await waitFor(
      async () =>
        (await n2.api.stateOf("admin-n1")) === "Online" && (await n1.api.stateOf("admin-n2")) === "Online",
      UI_TIMEOUT,
      { message: "both nodes Online", intervalMs: 100 },
    );

    const path = "live/admin";
    await using _pub = publish(n1.rtmpUrl(path), { seconds: 120 });
    await waitFor(
      async () => (await n2.api.sessions()).some((s) => s.stream_path === path && s.origin_id === "admin-n1"),
      UI_TIMEOUT,
      { message: "node 2 knows the session", intervalMs: 100 },
    );

    // A player on node 2 makes it pull the stream from node 1.
    const stopPlayer = new AbortController();
    const player = readFlv(n2.flvUrl(path), { signal: stopPlayer.signal, timeoutMs: 180_000 });
    try {
      await waitFor(
        async () => {
          const relays = await n2.api.ok<
            { sessions: { direction: string; stream_path: string; state: string }[] }
          >(
            "GET",
            "relay/sessions",
          );
          return relays.sessions.some((r) =>
            r.direction === "pull" && r.stream_path === path && r.state === "active"
          );
        },
        UI_TIMEOUT,
        { message: "node 2 relays the stream", intervalMs: 100 },
      );

      // The page's one server route: node 2 fetching node 1's /api/streams, behind the key.
      const proxy = `${n2.httpUrl}/admin/api/nodes/admin-n1/streams`;
      const refused = await fetch(proxy);
      assert.equal(refused.status, 401, await refused.text());
      const proxied = await fetch(proxy, { headers: { "x-cluster-api-key": key } });
      const body = await proxied.json() as {
        data: { streams: { stream_path: string; publisher: { protocol: string } }[] };
      };
      assert.equal(proxied.status, 200, JSON.stringify(body));
      assert.equal(body.data.streams.find((s) => s.stream_path === path)?.publisher.protocol, "rtmp");
      const unknown = await fetch(`${n2.httpUrl}/admin/api/nodes/nobody/streams`, {
        headers: { "x-cluster-api-key": key },
      });
      assert.equal(unknown.status, 404, await unknown.text());

      await using browser = await launchBrowser();
      const page = await browser.context.newPage();
      const pageErrors: string[] = [];
      page.on("pageerror", (err) => pageErrors.push(err.message));
      await page.goto(`${n2.httpUrl}/admin`, { timeout: UI_TIMEOUT });

      // The cluster API answers 401: the page asks for the key. A wrong one is refused.
      await page.waitForSelector("#key-form:not([hidden])", { timeout: UI_TIMEOUT });
      await page.screenshot({ path: `${ARTIFACTS_DIR}/admin-key.png` });
      await page.fill("#key-input", "not-the-key");
      await page.click("#key-form button[type=submit]");
      await pageUntil(
        page,
        `document.getElementById("key-error").textContent.includes("refused")`,
        "wrong key refused",
      );
      await page.fill("#key-input", key);
      await page.click("#key-form button[type=submit]");
      await page.waitForSelector("#key-form", { state: "hidden", timeout: UI_TIMEOUT });

      // Nodes: both Online.
      for (const id of ["admin-n1", "admin-n2"]) {
        await page.waitForSelector(`#nodes-table tr[data-server-id="${id}"][data-state="Online"]`, {
          timeout: UI_TIMEOUT,
        });
      }
      const n1Row = await page.textContent(`#nodes-table tr[data-server-id="admin-n1"]`);
      assert.match(n1Row ?? "", new RegExp(n1.address.replaceAll(".", "\\.")));
      assert.match(n1Row ?? "", /origin, edge/);

      // Streams: the session with its origin, codecs, resolution, bitrate and subscribe node.
      await openTab(page, "streams");
      const streamRow = `#streams-table tr[data-stream="${path}"]`;
      // Rendered once the origin's bitrate (6th column) and the subscribe node are known.
      await pageUntil(
        page,
        `(() => {
          const row = document.querySelector(${JSON.stringify(streamRow)});
          return !!row && row.textContent.includes("admin-n2") && Number(row.cells[5].textContent) > 0;
        })()`,
        "the stream row with its bitrate and subscribe node",
      );
      const cells = await page.$$eval(`${streamRow} td`, (tds) => tds.map((td) => td.textContent ?? ""));
      assert.equal(cells[0], path);
      assert.equal(cells[1], "admin-n1");
      assert.equal(cells[2], "h264");
      assert.equal(cells[3], "aac");
      assert.equal(cells[4], "320×240");
      assert.ok(Number(cells[5]) > 0, `bitrate from the origin's /api/streams: ${cells[5]}`);
      assert.ok(Number(cells[6]) >= 1, `players: ${cells[6]}`);
      assert.match(cells[7] ?? "", /admin-n2/);

      // Relay: this node's pull from node 1, active.
      await openTab(page, "relay");
      const relayRow = `#relay-table tr[data-stream="${path}"][data-direction="pull"][data-state="active"]`;
      await page.waitForSelector(relayRow, { timeout: UI_TIMEOUT });
      assert.match((await page.textContent(relayRow)) ?? "", /admin-n1 \(127\.0\.0\.3:\d+\)/);

      // Cluster map: origin → edge, with this node's relay state.
      await openTab(page, "cluster");
      const flow = await page.waitForSelector(`#cluster-graph li[data-stream="${path}"]`, {
        timeout: UI_TIMEOUT,
      });
      assert.match((await flow.textContent()) ?? "", /admin-n1 origin.*→.*admin-n2 active/s);

      // Preview: mpegts.js from /admin/vendor plays the stream from this node.
      await openTab(page, "streams");
      await page.click(`button[data-preview="${path}"]`);
      await pageUntil(
        page,
        `(() => {
          const v = document.getElementById("preview-video");
          return v.currentTime > 1.2 && !v.paused && v.videoWidth === 320;
        })()`,
        "the preview <video> playing past 1.2 s",
      );

      // The key never left the page's memory.
      const stored = await page.evaluate<Record<string, string>>(`({
        cookie: document.cookie,
        local: JSON.stringify({ ...localStorage }),
        session: JSON.stringify({ ...sessionStorage }),
        url: location.href,
      })`);
      for (const [where, text] of Object.entries(stored)) {
        assert.ok(!text.includes(key), `key found in ${where}`);
      }

      await page.screenshot({ path: `${ARTIFACTS_DIR}/admin.png`, fullPage: true });
      await openTab(page, "cluster");
      await page.screenshot({ path: `${ARTIFACTS_DIR}/admin-cluster.png`, fullPage: true });
      await openTab(page, "relay");
      await page.screenshot({ path: `${ARTIFACTS_DIR}/admin-relay.png`, fullPage: true });
      await openTab(page, "nodes");
      await page.screenshot({ path: `${ARTIFACTS_DIR}/admin-nodes.png`, fullPage: true });
      assert.deepEqual(pageErrors, [], "no JavaScript errors on the page");
    } finally {
      stopPlayer.abort();
      await player.catch(() => {});
    }
  },
});
