// End to end in real headless browsers, Debian's Chromium (over CDP) and Firefox ESR (over WebDriver BiDi),
// both driven by puppeteer-core: the page dials `touchtone serve`, the server hears the digits; then the
// server dials the browser and the test hears the tones the browser played out.
//
//   node e2e.mjs                     both browsers
//   node e2e.mjs firefox             one (or TOUCHTONE_BROWSERS=chromium,firefox)
//
// Env: TOUCHTONE_BIN (the touchtone binary), CHROMIUM / FIREFOX (browser executables),
// TOUCHTONE_SCREENSHOT (a .png path; the browser's name is added), TOUCHTONE_SERVER_LOG (appends the
// server's stderr), TOUCHTONE_E2E_VERBOSE=1 (the page's log and SDP), TOUCHTONE_E2E_TIMEOUT (seconds per browser).
// Prints ok/FAIL lines and "N passed, M failed" per browser and in total; exits non-zero on any failure.
import { spawn, spawnSync } from "node:child_process";
import { appendFileSync, writeFileSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import puppeteer from "puppeteer-core";

const bin = process.env.TOUCHTONE_BIN || resolve("../../target/debug/touchtone");
const shot = process.env.TOUCHTONE_SCREENSHOT || "";
const verbose = !!process.env.TOUCHTONE_E2E_VERBOSE;
// A hung browser must not hang CI: everything for one browser, launch included, within this.
const perBrowserMs = Number(process.env.TOUCHTONE_E2E_TIMEOUT || 90) * 1000;

const BROWSERS = {
  chromium: {
    label: "Chromium",
    options: (profile) => ({
      browser: "chrome",
      executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
      headless: true,
      userDataDir: profile,
      defaultViewport: { width: 1100, height: 760 },
      args: [
        "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run", "--disable-quic",
        "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
        "--autoplay-policy=no-user-gesture-required",
      ],
    }),
  },
  firefox: {
    label: "Firefox",
    options: (profile) => ({
      browser: "firefox",
      executablePath: process.env.FIREFOX || "/usr/bin/firefox-esr",
      headless: true,
      userDataDir: profile,
      defaultViewport: { width: 1100, height: 760 },
      extraPrefsFirefox: {
        // A fake microphone (a tone) without a permission prompt.
        "media.navigator.streams.fake": true,
        "media.navigator.permission.disabled": true,
        // The server's only candidate is 127.0.0.1; Firefox otherwise gathers only the default route's address.
        "media.peerconnection.ice.loopback": true,
        "media.peerconnection.ice.obfuscate_host_addresses": false,
        // Play and record the received audio without a user gesture.
        "media.autoplay.default": 0,
        "media.autoplay.block-webaudio": false,
      },
    }),
  },
};

let wanted = process.argv.slice(2);
if (wanted.length === 0) wanted = (process.env.TOUCHTONE_BROWSERS || "chromium,firefox").split(",");
wanted = wanted.map((w) => w.trim().toLowerCase()).filter(Boolean);
for (const w of wanted) {
  if (!BROWSERS[w]) {
    console.error(`unknown browser "${w}": use ${Object.keys(BROWSERS).join(" or ")}`);
    process.exit(2);
  }
}

// Starts `touchtone serve` on a free port (handing the process to `started` at once) and returns its URL.
async function startServer(started) {
  if (process.env.TOUCHTONE_PTIME) console.log(`server packets: ${process.env.TOUCHTONE_PTIME} ms of audio (TOUCHTONE_PTIME)`);
  const server = spawn(bin, ["serve", "--listen", "127.0.0.1:0", "--udp-listen", "127.0.0.1:0"], { stdio: ["ignore", "ignore", "pipe"] });
  started(server);
  const url = await new Promise((res, rej) => {
    let err = "";
    const timer = setTimeout(() => rej(new Error(`server did not start: ${err}`)), 15000);
    server.stderr.on("data", (d) => {
      if (process.env.TOUCHTONE_SERVER_LOG) appendFileSync(process.env.TOUCHTONE_SERVER_LOG, d);
      err += d.toString();
      const m = err.match(/open (http:\/\/\S+) in a browser/);
      if (m) {
        clearTimeout(timer);
        res(m[1]);
      }
    });
    server.on("error", (e) => rej(new Error(`cannot start ${bin}: ${e.message}`)));
    server.on("exit", (code) => rej(new Error(`server exited with ${code}: ${err}`)));
  });
  return url;
}

function wav(pcm, rate) {
  const h = Buffer.alloc(44);
  h.write("RIFF", 0);
  h.writeUInt32LE(36 + pcm.length, 4);
  h.write("WAVEfmt ", 8);
  h.writeUInt32LE(16, 16);
  h.writeUInt16LE(1, 20);
  h.writeUInt16LE(1, 22);
  h.writeUInt32LE(rate, 24);
  h.writeUInt32LE(rate * 2, 28);
  h.writeUInt16LE(2, 32);
  h.writeUInt16LE(16, 34);
  h.write("data", 36);
  h.writeUInt32LE(pcm.length, 40);
  return Buffer.concat([h, pcm]);
}

function sleep(ms) {
  return new Promise((r) => setTimeout(r, ms));
}

// One browser's run: the same checks for every browser.
async function runBrowser(name) {
  const { label, options } = BROWSERS[name];
  const counts = { passed: 0, failed: 0 };
  let over = false; // after a timeout, the abandoned run's late checks are not counted
  const check = (what, ok, detail = "") => {
    if (over) return;
    if (ok) {
      counts.passed++;
      console.log(`ok   ${label}: ${what}`);
    } else {
      counts.failed++;
      console.log(`FAIL ${label}: ${what} ${detail}`);
    }
  };
  console.log(`== ${label}`);
  const profile = mkdtempSync(join(tmpdir(), `touchtone-${name}-`));
  let server = null;
  let browser = null;
  let launching = null;
  let page = null;
  let timer = null;
  const started = Date.now();

  const waitFor = (fn, arg, timeout = 20000) => page.waitForFunction(fn, { timeout, polling: 100 }, arg);
  // The page's state without its recorded samples (only their count).
  const pageState = () =>
    page.evaluate(() => {
      const { log, received, tonechanges, serverEvents, recorded } = window.touchtone;
      return JSON.parse(JSON.stringify({ log, received, tonechanges, serverEvents, recordedLength: recorded.length }));
    });
  const setValue = (sel, value) =>
    page.evaluate((s, v) => {
      const el = document.querySelector(s);
      if (el.type === "checkbox") el.checked = v;
      else el.value = v;
    }, sel, value);
  const errorsOf = (st) => st.log.filter((l) => l.startsWith("Error") || l.startsWith("No microphone"));

  const run = async () => {
    const url = await startServer((p) => (server = p));
    // puppeteer kills a browser that has not started within `timeout`.
    launching = puppeteer.launch({ ...options(profile), timeout: 60000, protocolTimeout: 30000 });
    browser = await launching;
    if (verbose) console.log(`${label}: ${await browser.version()} started in ${Date.now() - started} ms`);
    // A tab of our own: the one the browser opened at startup may still be loading when we navigate it.
    page = await browser.newPage();
    page.on("pageerror", (e) => console.log(`${label}: page error: ${e.message}`));
    for (let attempt = 1; attempt <= 2; attempt++) {
      await page.goto(url, { waitUntil: "load", timeout: 30000 });
      const ready = await page
        .waitForFunction(() => !!(window.touchtone && document.getElementById("dial")), { timeout: 10000, polling: 100 })
        .then(() => true, () => false);
      if (ready) break;
      console.log(`${label}: the page was not ready at ${page.url()}, loading it again`);
    }
    const title = await page.title();
    check("the page loads", title.includes("Touchtone"), `${page.url()} ${JSON.stringify(title)}`);

    // Browser -> server: 123# at 100/70, the call stays up for the reverse direction.
    await setValue("#tones", "123#");
    await setValue("#duration", "100");
    await setValue("#gap", "70");
    await setValue("#hangup", false);
    await page.click("#dial");
    // Done when the last tonechange came, or the page gave up (no connection, no DTMF).
    await waitFor(() => window.touchtone.tonechanges.includes("") || window.touchtone.log.some((l) => l.startsWith("Error")), null, 30000);
    let st = await pageState();
    check("the browser's call connected", st.log.includes("Connection state changed to: connected"), JSON.stringify(errorsOf(st)));
    if (verbose) {
      const sdp = await page.evaluate(() => (typeof pc !== "undefined" && pc ? [pc.localDescription?.sdp, pc.remoteDescription?.sdp] : []));
      console.log(`${label}: offer\n${sdp[0]}\n${label}: answer\n${sdp[1]}`);
    }
    const canDtmfNow = await page.evaluate(() => !!(typeof sender !== "undefined" && sender && sender.dtmf && sender.dtmf.canInsertDTMF));
    const refused = st.log.some((l) => l.startsWith("Error: DTMF cannot be sent"));
    const canDtmf = canDtmfNow && !refused;
    check("the browser could send DTMF once the call connected (canInsertDTMF)", canDtmf,
      canDtmfNow ? `canInsertDTMF was still false when the page dialed right after "connected", true a moment later: ${JSON.stringify(errorsOf(st))}`
        : `canInsertDTMF is false: ${JSON.stringify(errorsOf(st))}`);
    if (canDtmf) await waitFor(() => window.touchtone.received.length >= 4, null, 5000).catch(() => {});
    st = await pageState();
    const got = st.received.map((d) => d.digit).join("");
    check("the server received exactly 1 2 3 #", got === "123#", `got ${JSON.stringify(st.received)}`);
    check(
      "each digit lasted 100 ms within 40 ms",
      st.received.length === 4 && st.received.every((d) => Math.abs(d.duration_ms - 100) <= 40 && d.source === "rfc4733"),
      JSON.stringify(st.received),
    );
    check("the page logged tonechange 1 2 3 # then the empty one", JSON.stringify(st.tonechanges) === JSON.stringify(["1", "2", "3", "#", ""]), JSON.stringify(st.tonechanges));
    const shown = await page.evaluate(() => [...document.querySelectorAll("#digits .digit b")].map((e) => e.textContent).join(""));
    check("the page shows the received digits", shown === "123#", shown);
    const stateLines = st.serverEvents.filter((e) => e.type === "state").map((e) => e.state);
    check("the server reported its connection state", stateLines.includes("connected"), JSON.stringify(stateLines));

    // The browser's audio packets while nothing dials: with a server at TOUCHTONE_PTIME=40 or 60 the
    // answer asks for packets that long (a=ptime) and Chromium sends 25 or 17 a second; Firefox is not
    // asked (its DTMF goes wrong at 60 ms) and sends 50, as both do at 20 ms.
    const sentAudio = () => page.evaluate(async () => {
      let n = null;
      (await pc.getStats()).forEach((s) => {
        if (s.type === "outbound-rtp" && (s.kind || s.mediaType) === "audio") n = s.packetsSent;
      });
      return n;
    });
    const sent0 = await sentAudio();
    const idleFrom = Date.now();
    await sleep(2000);
    const sent1 = await sentAudio();
    const perSecond = (sent1 - sent0) / ((Date.now() - idleFrom) / 1000);
    const ptime = Number(process.env.TOUCHTONE_PTIME || 20);
    const asked = ptime > 20 && name !== "firefox";
    const want = 1000 / (asked ? ptime : 20);
    check(
      (asked ? `the browser sends the ${ptime} ms audio packets the answer asked for` : "the browser sends 20 ms audio packets") +
        ` (${perSecond.toFixed(1)} a second while idle, ${want.toFixed(1)} expected)`,
      sent0 !== null && Math.abs(perSecond - want) <= want * 0.2,
      `${perSecond.toFixed(1)} packets a second`,
    );

    // Server -> browser: 4321 at 200/100.
    const before = await page.evaluate(() => window.touchtone.inboundStats().then((s) => s && { packetsReceived: s.packetsReceived }));
    const recordedBefore = st.recordedLength;
    const errorsBefore = errorsOf(st).length;
    await setValue("#serverTones", "4321");
    await setValue("#duration", "200");
    await setValue("#gap", "100");
    await page.evaluate(() => {
      const track = pc.getReceivers().map((r) => r.track).find((t) => t.kind === "audio");
      const mr = new MediaRecorder(new MediaStream([track]));
      window.__e2eRecorder = { mr, chunks: [] };
      mr.ondataavailable = (e) => window.__e2eRecorder.chunks.push(e.data);
      mr.start();
    });
    await page.click("#serverDial");
    await waitFor(
      (n) => window.touchtone.serverEvents.some((e) => e.type === "tonechange" && e.tone === "") ||
        window.touchtone.log.filter((l) => l.startsWith("Error")).length > n,
      errorsBefore, 20000,
    );
    await sleep(500);
    const after = await page.evaluate(() => window.touchtone.inboundStats().then((s) => s && { packetsReceived: s.packetsReceived }));
    st = await page.evaluate(() => ({ serverEvents: window.touchtone.serverEvents, log: window.touchtone.log }));
    const serverTones = st.serverEvents.filter((e) => e.type === "tonechange").map((e) => e.tone);
    check("the server played 4 3 2 1 with W3C tonechange events", JSON.stringify(serverTones) === JSON.stringify(["4", "3", "2", "1", ""]),
      `${JSON.stringify(serverTones)} ${JSON.stringify(errorsOf(st).slice(errorsBefore))}`);
    const gotPackets = after && before ? after.packetsReceived - before.packetsReceived : 0;
    // 4 tones of 200 ms: 10 updates + 2 end copies each, plus silence frames in the gaps.
    check("the browser received the server's RTP (inbound-rtp)", gotPackets >= 40, `packetsReceived +${gotPackets}`);

    // What the browser played out: the received telephone-events are rendered as tones, which
    // `touchtone detect` must hear as 4 3 2 1. The page records the received audio with WebAudio; where
    // its AudioContext cannot run (headless Firefox without an audio output device stays "suspended"),
    // the received track as recorded by a MediaRecorder, decoded back to PCM.
    const rec = await page.evaluate(async (from) => {
      const toB64 = (samples) => {
        const pcm = new Int16Array(samples.length);
        for (let i = 0; i < samples.length; i++) pcm[i] = Math.max(-32768, Math.min(32767, Math.round(samples[i] * 32767)));
        const bytes = new Uint8Array(pcm.buffer);
        let s = "";
        for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
        return btoa(s);
      };
      const { mr, chunks } = window.__e2eRecorder;
      if (window.touchtone.recorded.length > from) {
        if (mr.state !== "inactive") mr.stop();
        return { source: "the page's WebAudio recording", rate: window.touchtone.sampleRate || 48000, b64: toB64(window.touchtone.recorded.slice(from)) };
      }
      if (mr.state !== "inactive") await new Promise((r) => { mr.onstop = r; mr.stop(); });
      const data = await new Blob(chunks, { type: mr.mimeType }).arrayBuffer();
      const decoded = await new OfflineAudioContext(1, 1, 48000).decodeAudioData(data);
      return { source: `a MediaRecorder (${chunks[0]?.type || mr.mimeType}) of the received track`, rate: decoded.sampleRate, b64: toB64(decoded.getChannelData(0)) };
    }, recordedBefore);
    const pcm = Buffer.from(rec.b64, "base64");
    let heard = "";
    let played = [];
    if (pcm.length > 0) {
      const dir = mkdtempSync(join(tmpdir(), "touchtone-e2e-"));
      const file = join(dir, `received-${name}.wav`);
      writeFileSync(file, wav(pcm, rec.rate));
      const r = spawnSync(bin, ["detect", file, "--format", "json"], { encoding: "utf8", timeout: 20000 });
      const found = (r.stdout || "").trim().split("\n").filter(Boolean).map((l) => JSON.parse(l));
      heard = found.map((d) => d.digit).join("");
      played = found.map((d) => d.duration_ms);
      console.log(`${label} played out the received telephone-events: detected "${heard}" in ${(pcm.length / 2 / rec.rate).toFixed(1)} s from ${rec.source}`);
      if (heard === "4321") rmSync(dir, { recursive: true, force: true });
      else console.log(`${label}: recording kept in ${file}`);
    }
    check(`the tones ${label} played out are 4 3 2 1`, heard === "4321", pcm.length ? `detected "${heard}"` : "no audio was recorded");
    // The server sent 200 ms tones; the browser plays each for as long as its duration field says.
    check(
      `each tone ${label} played lasted 200 ms within 40 ms`,
      played.length === 4 && played.every((ms) => Math.abs(ms - 200) <= 40),
      JSON.stringify(played),
    );

    // Hang up: the server ends the call.
    await page.click("#hangupNow");
    await waitFor(() => window.touchtone.serverEvents.some((e) => e.type === "closed"), null, 10000)
      .then(() => check("hang-up ends the call on the server", true))
      .catch(() => check("hang-up ends the call on the server", false));
    if (shot) {
      const path = shot.replace(/(\.png)?$/i, `-${name}.png`);
      await page.screenshot({ path, fullPage: true });
      console.log(`${label}: screenshot ${path}`);
    }
    const metrics = await (await fetch(url + "metrics")).text();
    check("metrics count the digits", /touchtone_digits_received_total 4\b/.test(metrics), metrics.match(/touchtone_digits_received_total .*/)?.[0] || metrics);
    if (verbose) console.log(`${label}: page log\n  ${(await page.evaluate(() => window.touchtone.log)).join("\n  ")}`);
  };

  try {
    await Promise.race([
      run(),
      new Promise((_, rej) => {
        timer = setTimeout(() => rej(new Error(`timed out after ${perBrowserMs / 1000} s`)), perBrowserMs);
      }),
    ]);
  } catch (e) {
    check("the browser test ran to the end", false, e.stack || String(e));
  } finally {
    over = true;
    clearTimeout(timer);
    // A launch still under way when the time ran out: wait for it (bounded by its own timeout) to close it.
    if (!browser && launching) browser = await launching.catch(() => null);
    if (browser) {
      const proc = browser.process();
      await Promise.race([browser.close().catch(() => {}), sleep(10000)]);
      if (proc && proc.exitCode === null && proc.signalCode === null) {
        try {
          process.kill(-proc.pid, "SIGKILL");
        } catch {
          proc.kill("SIGKILL");
        }
      }
    }
    if (server) server.kill();
    rmSync(profile, { recursive: true, force: true, maxRetries: 3 });
  }
  console.log(`${label}: ${counts.passed} passed, ${counts.failed} failed (${((Date.now() - started) / 1000).toFixed(1)} s)`);
  return counts;
}

let passed = 0;
let failed = 0;
for (const name of wanted) {
  const c = await runBrowser(name);
  passed += c.passed;
  failed += c.failed;
}
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
