// Drives Debian's Firefox ESR over WebDriver BiDi (puppeteer-core) for the Python tests.
// Protocol: one JSON object per line on stdin, {id, op, ...}; one reply per line on stdout,
// {id, result} or {id, error}. Commands run concurrently (a long waitForFunction does not block
// the others). The first line written is {ready: true, version}. Console errors and page errors
// go to stderr, prefixed with the page number.
import readline from "node:readline";
import puppeteer from "puppeteer-core";

// Without these, in a loopback-only network namespace Firefox gathers no loopback candidates or
// waits for a camera permission prompt that headless mode never answers.
const PREFS = {
  "media.navigator.streams.fake": true,
  "media.navigator.permission.disabled": true,
  "media.navigator.permission.fake": true,
  "media.peerconnection.ice.loopback": true,
  "media.peerconnection.ice.obfuscate_host_addresses": false,
  "media.autoplay.default": 0,
  "media.autoplay.blocking_policy": 0,
};

const browser = await puppeteer.launch({
  browser: "firefox",
  executablePath: process.env.RELAYROOM_FIREFOX || "/usr/bin/firefox-esr",
  headless: true,
  protocol: "webDriverBiDi",
  extraPrefsFirefox: PREFS,
  args: ["--width=1280", "--height=900"],
});
const pages = [];

function reply(message) {
  process.stdout.write(`${JSON.stringify(message)}\n`);
}

// A function source and its arguments, as one expression.
function call(fn, args) {
  return `(${fn})(...${JSON.stringify(args || [])})`;
}

async function handle(cmd) {
  const page = cmd.page === undefined ? null : pages[cmd.page];
  switch (cmd.op) {
    case "newPage": {
      const created = await browser.newPage();
      const index = pages.push(created) - 1;
      await created.setViewport({ width: cmd.width || 1280, height: cmd.height || 900 });
      created.on("console", (m) => {
        if (m.type() === "error") process.stderr.write(`firefox page ${index} console: ${m.text()}\n`);
      });
      created.on("pageerror", (e) => process.stderr.write(`firefox page ${index} error: ${e}\n`));
      if (cmd.initScript) await created.evaluateOnNewDocument(cmd.initScript);
      return index;
    }
    case "goto":
      await page.goto(cmd.url, { waitUntil: "load" });
      return null;
    case "evaluate":
      return await page.evaluate(call(cmd.fn, cmd.args));
    case "waitForFunction":
      await page.waitForFunction(call(cmd.fn, cmd.args), {
        timeout: cmd.timeoutMs ?? 20000,
        polling: 100,
      });
      return null;
    case "mouse":
      // [[action, x, y], ...] with action move, down or up, in page coordinates.
      for (const [action, x, y] of cmd.steps) {
        if (action === "move") await page.mouse.move(x, y);
        else if (action === "down") await page.mouse.down();
        else if (action === "up") await page.mouse.up();
      }
      return null;
    case "screenshot":
      await page.screenshot({ path: cmd.path });
      return null;
    case "close":
      await browser.close();
      return null;
    default:
      throw new Error(`unknown op ${cmd.op}`);
  }
}

reply({ ready: true, version: await browser.version() });
const lines = readline.createInterface({ input: process.stdin });
lines.on("line", (line) => {
  const cmd = JSON.parse(line);
  handle(cmd).then(
    (result) => reply({ id: cmd.id, result: result ?? null }),
    (error) => reply({ id: cmd.id, error: String(error?.stack || error) }),
  );
});
lines.on("close", () => browser.close().finally(() => process.exit(0)));
