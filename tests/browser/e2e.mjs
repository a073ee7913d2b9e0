// End to end in a real headless Chromium: the page dials `touchtone serve`, the server hears the digits;
// then the server dials the browser. Prints "N passed, M failed" and exits non-zero on any failure.
import { spawn, spawnSync } from "node:child_process";
import { appendFileSync, writeFileSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { chromium } from "playwright-core";

const bin = process.env.TOUCHTONE_BIN || resolve("../../target/debug/touchtone");
const shot = process.env.TOUCHTONE_SCREENSHOT || "";
let passed = 0;
let failed = 0;

function check(name, ok, detail = "") {
  if (ok) {
    passed++;
    console.log(`ok   ${name}`);
  } else {
    failed++;
    console.log(`FAIL ${name} ${detail}`);
  }
}

async function startServer() {
  const server = spawn(bin, ["serve", "--listen", "127.0.0.1:0"], { stdio: ["ignore", "ignore", "pipe"] });
  const url = await new Promise((res, rej) => {
    let err = "";
    const timer = setTimeout(() => rej(new Error(`server did not start: ${err}`)), 15000);
    server.stderr.on("data", (d) => {
      if (process.env.TOUCHTONE_SERVER_LOG) appendFileSync(process.env.TOUCHTONE_SERVER_LOG, d);
      err += d.toString();
      const m = err.match(/open (http:\/\/[^ ]+)/);
      if (m) {
        clearTimeout(timer);
        res(m[1]);
      }
    });
    server.on("exit", (code) => rej(new Error(`server exited with ${code}: ${err}`)));
  });
  return { server, url };
}

async function waitFor(page, fn, arg, timeout = 20000) {
  await page.waitForFunction(fn, arg, { timeout, polling: 100 });
}

function wav(samples, rate) {
  const data = Buffer.alloc(samples.length * 2);
  samples.forEach((s, i) => data.writeInt16LE(Math.max(-32768, Math.min(32767, Math.round(s * 32767))), i * 2));
  const h = Buffer.alloc(44);
  h.write("RIFF", 0);
  h.writeUInt32LE(36 + data.length, 4);
  h.write("WAVEfmt ", 8);
  h.writeUInt32LE(16, 16);
  h.writeUInt16LE(1, 20);
  h.writeUInt16LE(1, 22);
  h.writeUInt32LE(rate, 24);
  h.writeUInt32LE(rate * 2, 28);
  h.writeUInt16LE(2, 32);
  h.writeUInt16LE(16, 34);
  h.write("data", 36);
  h.writeUInt32LE(data.length, 40);
  return Buffer.concat([h, data]);
}

const { server, url } = await startServer();
const context = await chromium.launchPersistentContext(mkdtempSync(join(tmpdir(), "touchtone-chromium-")), {
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  viewport: { width: 1100, height: 760 },
  args: [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
    "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
    "--autoplay-policy=no-user-gesture-required",
  ],
});
try {
  const page = context.pages()[0] || (await context.newPage());
  page.on("pageerror", (e) => console.log(`page error: ${e.message}`));
  await page.goto(url);
  check("the page loads", (await page.title()).includes("Touchtone"));

  // Browser -> server: 123# at 100/70, the call stays up for the reverse direction.
  await page.fill("#tones", "123#");
  await page.fill("#duration", "100");
  await page.fill("#gap", "70");
  await page.uncheck("#hangup");
  await page.click("#dial");
  await waitFor(page, () => window.touchtone.tonechanges.includes(""));
  await waitFor(page, () => window.touchtone.received.length >= 4, null, 5000).catch(() => {});
  const st = await page.evaluate(() => window.touchtone);
  const got = st.received.map((d) => d.digit).join("");
  check("the server received exactly 1 2 3 #", got === "123#", `got ${JSON.stringify(st.received)}`);
  check(
    "each digit lasted 100 ms within 40 ms",
    st.received.length === 4 && st.received.every((d) => Math.abs(d.duration_ms - 100) <= 40 && d.source === "rfc4733"),
    JSON.stringify(st.received),
  );
  check("the page logged tonechange 1 2 3 # then the empty one", JSON.stringify(st.tonechanges) === JSON.stringify(["1", "2", "3", "#", ""]), JSON.stringify(st.tonechanges));
  const shown = await page.$$eval("#digits .digit b", (els) => els.map((e) => e.textContent).join(""));
  check("the page shows the received digits", shown === "123#", shown);
  const stateLines = st.serverEvents.filter((e) => e.type === "state").map((e) => e.state);
  check("the server reported its connection state", stateLines.includes("connected"), JSON.stringify(stateLines));

  // Server -> browser.
  const before = await page.evaluate(() => window.touchtone.inboundStats());
  const recordedBefore = await page.evaluate(() => window.touchtone.recorded.length);
  await page.fill("#serverTones", "4321");
  await page.fill("#duration", "200");
  await page.fill("#gap", "100");
  await page.click("#serverDial");
  await waitFor(page, () => window.touchtone.serverEvents.some((e) => e.type === "tonechange" && e.tone === ""));
  await page.waitForTimeout(500);
  const after = await page.evaluate(() => window.touchtone.inboundStats());
  const serverTones = (await page.evaluate(() => window.touchtone.serverEvents))
    .filter((e) => e.type === "tonechange").map((e) => e.tone);
  check("the server played 4 3 2 1 with W3C tonechange events", JSON.stringify(serverTones) === JSON.stringify(["4", "3", "2", "1", ""]), JSON.stringify(serverTones));
  const gotPackets = after && before ? after.packetsReceived - before.packetsReceived : 0;
  // 4 tones of 200 ms: 10 updates + 2 end copies each, plus silence frames in the gaps.
  check("the browser received the server's RTP (inbound-rtp)", gotPackets >= 40, `packetsReceived +${gotPackets}`);
  const rate = await page.evaluate(() => window.touchtone.sampleRate || 48000);
  const audio = await page.evaluate((from) => window.touchtone.recorded.slice(from), recordedBefore);
  if (audio.length > 0) {
    const dir = mkdtempSync(join(tmpdir(), "touchtone-e2e-"));
    const file = join(dir, "received.wav");
    writeFileSync(file, wav(audio, rate));
    const r = spawnSync(bin, ["detect", file, "--format", "json"], { encoding: "utf8" });
    const heard = r.stdout.trim().split("\n").filter(Boolean).map((l) => JSON.parse(l).digit).join("");
    console.log(`Chromium rendered the received telephone-events as audio: detected "${heard}" in ${(audio.length / rate).toFixed(1)} s`);
    check("the tones Chromium played out are 4 3 2 1", heard === "4321", `detected "${heard}"`);
  } else {
    console.log("Chromium gave no received audio to record; telephone-events checked through getStats only");
  }

  // Hang up: the server ends the call.
  await page.click("#hangupNow");
  await waitFor(page, () => window.touchtone.serverEvents.some((e) => e.type === "closed"), null, 10000)
    .then(() => check("hang-up ends the call on the server", true))
    .catch(() => check("hang-up ends the call on the server", false));
  if (shot) {
    await page.screenshot({ path: shot, fullPage: true });
    console.log(`screenshot: ${shot}`);
  }
  const metrics = await (await fetch(url + "metrics")).text();
  check("metrics count the digits", /touchtone_digits_received_total 4\b/.test(metrics), metrics);
} catch (e) {
  check("the browser test ran to the end", false, e.stack || String(e));
} finally {
  await context.close();
  server.kill();
}
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
