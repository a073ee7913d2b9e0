// A page from another origin calls `touchtone serve --token T --allow-origin <that origin>` in headless
// Chromium: WHIP with `Authorization: Bearer T` answers 201 with a readable `Location`, the call connects
// and a digit reaches the server; without the token the server answers 401; a page from an origin that is
// not allowed cannot read the server's answers at all (CORS).
//
//   TOUCHTONE_BIN=target/debug/touchtone node cross-origin.mjs
import { spawn } from "node:child_process";
import { createServer } from "node:http";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import puppeteer from "puppeteer-core";

const bin = process.env.TOUCHTONE_BIN || resolve("../../target/debug/touchtone");
const TOKEN = "s3cret-token";
let passed = 0;
let failed = 0;
function check(what, ok, detail = "") {
  if (ok) {
    passed++;
    console.log(`ok   cross-origin: ${what}`);
  } else {
    failed++;
    console.log(`FAIL cross-origin: ${what} ${detail}`);
  }
}

// The other origin's page: calls the server given in ?server= and reports in window.result.
const PAGE = `<!doctype html><title>another origin</title><script>
window.result = (async () => {
  const server = new URLSearchParams(location.search).get("server");
  const token = new URLSearchParams(location.search).get("token");
  const out = {};
  try {
    const anon = await fetch(server + "whip", { method: "POST", headers: { "Content-Type": "application/sdp" }, body: "v=0" });
    out.noToken = anon.status;
  } catch (e) { out.noToken = "blocked: " + e.message; }
  const pc = new RTCPeerConnection();
  const stream = await navigator.mediaDevices.getUserMedia({ audio: true });
  const sender = pc.addTrack(stream.getAudioTracks()[0], stream);
  await pc.setLocalDescription(await pc.createOffer());
  await new Promise((r) => {
    if (pc.iceGatheringState === "complete") return r();
    pc.onicegatheringstatechange = () => pc.iceGatheringState === "complete" && r();
    setTimeout(r, 3000);
  });
  let res;
  try {
    res = await fetch(server + "whip", {
      method: "POST",
      headers: { "Content-Type": "application/sdp", Authorization: "Bearer " + token },
      body: pc.localDescription.sdp,
    });
  } catch (e) { out.offer = "blocked: " + e.message; return out; }
  out.offer = res.status;
  out.location = res.headers.get("Location");
  if (res.status !== 201) return out;
  await pc.setRemoteDescription({ type: "answer", sdp: await res.text() });
  out.connected = await new Promise((r) => {
    const done = () => pc.connectionState === "connected" && r(true);
    pc.onconnectionstatechange = done;
    done();
    setTimeout(() => r(false), 10000);
  });
  for (let i = 0; i < 50 && !sender.dtmf.canInsertDTMF; i++) await new Promise((r) => setTimeout(r, 20));
  out.canInsertDTMF = sender.dtmf.canInsertDTMF;
  if (out.canInsertDTMF) sender.dtmf.insertDTMF("7", 100, 70);
  await new Promise((r) => setTimeout(r, 700));
  const del = await fetch(new URL(out.location, server), { method: "DELETE", headers: { Authorization: "Bearer " + token } });
  out.deleted = del.status;
  return out;
})();
</script>`;

function pageServer() {
  return new Promise((res) => {
    const s = createServer((req, rsp) => {
      rsp.writeHead(200, { "Content-Type": "text/html" });
      rsp.end(PAGE);
    });
    s.listen(0, "127.0.0.1", () => res(s));
  });
}

function startTouchtone(origin) {
  const server = spawn(bin, ["serve", "--listen", "127.0.0.1:0", "--udp-listen", "127.0.0.1:0", "--token", TOKEN, "--allow-origin", origin], {
    stdio: ["ignore", "ignore", "pipe"],
  });
  return new Promise((res, rej) => {
    let err = "";
    const timer = setTimeout(() => rej(new Error(`server did not start: ${err}`)), 15000);
    server.stderr.on("data", (d) => {
      err += d.toString();
      const m = err.match(/open (http:\/\/\S+\/)\S* in a browser/);
      if (m) {
        clearTimeout(timer);
        res({ server, url: m[1] });
      }
    });
    server.on("exit", (code) => rej(new Error(`server exited with ${code}: ${err}`)));
  });
}

const allowed = await pageServer();
const other = await pageServer();
const allowedOrigin = `http://127.0.0.1:${allowed.address().port}`;
const otherOrigin = `http://127.0.0.1:${other.address().port}`;
const { server, url } = await startTouchtone(allowedOrigin);
const profile = mkdtempSync(join(tmpdir(), "touchtone-cors-"));
let browser = null;
const deadline = setTimeout(() => {
  console.log("FAIL cross-origin: timed out after 90 s");
  process.exit(1);
}, 90000);
try {
  browser = await puppeteer.launch({
    browser: "chrome",
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    userDataDir: profile,
    args: [
      "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
      "--disable-sync", "--no-first-run", "--disable-quic",
      "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
    ],
  });
  const page = await browser.newPage();
  const q = `?server=${encodeURIComponent(url)}&token=${TOKEN}`;
  await page.goto(`${allowedOrigin}/${q}`, { waitUntil: "load" });
  const r = await page.evaluate(() => window.result);
  check("an offer without the token gets 401", r.noToken === 401, JSON.stringify(r));
  check("an offer with the token gets 201", r.offer === 201, JSON.stringify(r));
  check("the page can read Location (exposed)", typeof r.location === "string" && r.location.includes("/whip/"), JSON.stringify(r));
  check("the call connects and can send DTMF", r.connected === true && r.canInsertDTMF === true, JSON.stringify(r));
  check("hanging up with the token works", r.deleted >= 200 && r.deleted < 300, JSON.stringify(r));
  const metrics = await (await fetch(url + "metrics")).text();
  check("the server heard the digit", /touchtone_digits_received_total 1\b/.test(metrics), metrics.match(/touchtone_digits_received_total .*/)?.[0]);

  // An origin that is not allowed cannot read the answers (the browser blocks them).
  const page2 = await browser.newPage();
  await page2.goto(`${otherOrigin}/${q}`, { waitUntil: "load" });
  const r2 = await page2.evaluate(() => window.result);
  check("a page from an origin not allowed is blocked", String(r2.offer).startsWith("blocked"), JSON.stringify(r2));
} catch (e) {
  check("the test ran to the end", false, e.stack || String(e));
} finally {
  clearTimeout(deadline);
  if (browser) await browser.close().catch(() => {});
  server.kill();
  allowed.close();
  other.close();
  rmSync(profile, { recursive: true, force: true });
}
console.log(`cross-origin: ${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
