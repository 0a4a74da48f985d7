// The web dashboard (/ui/) in a real headless browser: Debian's chromium
// driven by puppeteer-core. A job submitted from the page shows its progress
// bar move to 100 %; a slow job is canceled with the page's button; without
// a token the page is read-only; the page runs under its strict CSP without
// a single console error. Leaves a screenshot in $A2AD_BUILD/ui-dashboard.png.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync, rmSync, existsSync } from 'node:fs';
import { randomUUID } from 'node:crypto';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import puppeteer from 'puppeteer-core';

const here = dirname(fileURLToPath(import.meta.url));
const build = resolve(process.env.A2AD_BUILD || join(here, '..', '..', 'build'));
const chromium = process.env.CHROMIUM || '/usr/bin/chromium';
const ADMIN = `ui-test-${randomUUID()}`;

async function startDaemon() {
  const dir = mkdtempSync(join(tmpdir(), 'a2ad-ui-'));
  const conf = join(dir, 'a2ad.conf');
  writeFileSync(conf, [
    '[server]', 'listen = 127.0.0.1', 'port = 0', 'default_agent = processor',
    `admin_tokens = ${ADMIN}`,
    '[workers]', 'threads = 2', 'shutdown_grace_s = 2',
    '[plugins]', `dir = ${join(build, 'plugins')}`, 'load = processor,echo,failing',
    '[tasks]', 'store = sqlite', `path = ${join(dir, 'a2ad.db')}`,
    // 10 steps of 400 ms: slow enough for the page to see the bar between 0
    // and 100 % (it polls every second) and to cancel a job mid-way.
    '[agent.processor]', 'step_ms = 400', '',
  ].join('\n'));
  const child = spawn(join(build, 'a2ad'), ['-c', conf], { stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  child.stdout.setEncoding('utf8').on('data', (s) => { log += s; });
  child.stderr.setEncoding('utf8').on('data', (s) => { log += s; });
  const stop = () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  };
  process.once('exit', stop);
  for (let i = 0; i < 500; i++) {
    const m = /listening on http:\/\/127\.0\.0\.1:(\d+)/.exec(log);
    if (m && log.includes(' ready in ')) return { base: `http://127.0.0.1:${m[1]}`, stop, log: () => log };
    if (child.exitCode !== null) break;
    await new Promise((r) => setTimeout(r, 20));
  }
  stop();
  throw new Error(`a2ad did not start; log:\n${log}`);
}

async function admin(base, path) {
  const r = await fetch(base + path, { headers: { Authorization: `Bearer ${ADMIN}` } });
  return r.json();
}

test('dashboard: progress to 100 %, cancel from the page, read-only without a token', { timeout: 120000 }, async () => {
  assert.ok(existsSync(chromium), `${chromium} is missing`);
  const d = await startDaemon();
  const browser = await puppeteer.launch({
    executablePath: chromium,
    headless: true,
    // root in CI containers: chromium refuses its sandbox there
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'],
  });
  try {
    const page = await browser.newPage();
    await page.setViewport({ width: 1440, height: 1000 });
    const problems = [];
    page.on('console', (m) => { if (m.type() === 'error') problems.push(m.text()); });
    page.on('pageerror', (e) => problems.push(String(e)));

    const resp = await page.goto(d.base + '/ui/', { waitUntil: 'load' });
    assert.equal(resp.status(), 200);
    const csp = resp.headers()['content-security-policy'] || '';
    assert.match(csp, /default-src 'none'/);
    assert.match(csp, /script-src 'self'/);

    // Read-only: counters and agents come, tasks and actions do not.
    await page.waitForFunction(() => document.getElementById('conn').dataset.state === 'ok', { timeout: 10000 });
    await page.waitForFunction(() => document.querySelectorAll('#agents tbody tr').length === 3, { timeout: 10000 });
    assert.match(await page.$eval('#mode', (e) => e.textContent), /Read-only/);
    assert.match(await page.$eval('#tasks tbody', (e) => e.textContent), /need an admin token/);
    assert.equal(await page.$eval('#d-cancel', (e) => e.disabled), true);

    // A wrong token is refused and forgotten, with the daemon's reason shown.
    await page.type('#token', 'not-the-admin-token-at-all');
    await page.click('#token-save');
    await page.waitForFunction(() => /refused the token/.test(document.getElementById('mode').textContent), { timeout: 10000 });

    await page.type('#token', ADMIN);
    await page.click('#token-save');
    await page.waitForFunction(() => /Admin token in use/.test(document.getElementById('mode').textContent), { timeout: 10000 });
    assert.equal(await page.evaluate(() => sessionStorage.getItem('a2ad.adminToken')), ADMIN);

    // Submit from the page; the detail panel follows the new task.
    await page.select('#send-agent', 'processor');
    await page.type('#send-text', 'first job from the browser');
    await page.click('#send');
    await page.waitForFunction(() => document.getElementById('send-result').dataset.task, { timeout: 10000 });
    const first = await page.$eval('#send-result', (e) => e.dataset.task);
    await page.waitForFunction((id) => !document.getElementById('detail').hidden &&
      document.getElementById('d-id').textContent === id, { timeout: 10000 }, first);

    // Watch the bar: it must be seen strictly between 0 and 100, then at 100.
    const seen = new Set();
    let state = '';
    for (let i = 0; i < 300 && state !== 'completed'; i++) {
      seen.add(Number(await page.$eval('#d-progress', (e) => e.getAttribute('aria-valuenow'))));
      state = await page.$eval('#d-state', (e) => e.textContent);
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.equal(state, 'completed');
    await page.waitForFunction(() => document.getElementById('d-progress').getAttribute('aria-valuenow') === '100', { timeout: 5000 });
    const between = [...seen].filter((v) => v > 0 && v < 100);
    assert.ok(between.length >= 1, `the bar was never seen between 0 and 100: ${[...seen]}`);
    assert.match(await page.$eval('#d-artifacts', (e) => e.textContent), /results\.json/);
    assert.match(await page.$eval('#d-history', (e) => e.textContent), /Processing complete!/);
    // The task list row shows it too.
    await page.waitForFunction((id) => {
      const tr = document.querySelector(`#tasks tr[data-id="${id}"]`);
      return tr && tr.dataset.state === 'completed' && tr.querySelector('.progress').getAttribute('aria-valuenow') === '100';
    }, { timeout: 5000 }, first);

    // A slow job, canceled with the page's button while it works.
    await page.type('#send-text', 'slow job to cancel');
    await page.click('#send');
    await page.waitForFunction((id) => {
      const t = document.getElementById('send-result').dataset.task;
      return t && t !== id;
    }, { timeout: 10000 }, first);
    const slow = await page.$eval('#send-result', (e) => e.dataset.task);
    await page.waitForFunction((id) => document.getElementById('d-id').textContent === id &&
      document.getElementById('d-state').textContent === 'working' &&
      !document.getElementById('d-cancel').disabled, { timeout: 10000 }, slow);
    await page.click('#d-cancel');
    await page.waitForFunction(() => document.getElementById('d-state').textContent === 'canceled', { timeout: 10000 });
    assert.match(await page.$eval('#d-note', (e) => e.textContent), /canceled/);
    const fromApi = await admin(d.base, `/admin/v1/tasks/${slow}`);
    assert.equal(fromApi.summary.state, 'canceled');
    assert.ok(fromApi.summary.progress === null || fromApi.summary.progress < 1, 'canceled before its end');
    await page.waitForFunction(() => document.getElementById('d-cancel').disabled, { timeout: 5000 });

    // One that fails, for the picture; then show the completed one.
    await page.select('#send-agent', 'failing');
    await page.type('#send-text', 'a job that fails');
    await page.click('#send');
    await page.waitForFunction(() => document.querySelector('#tasks tr[data-state="failed"]'), { timeout: 10000 });
    await page.click(`#tasks tr[data-id="${first}"]`);
    await page.waitForFunction((id) => document.getElementById('d-id').textContent === id, { timeout: 5000 }, first);
    await page.waitForFunction(() => document.getElementById('c-tasks').textContent === '3', { timeout: 5000 });
    await new Promise((r) => setTimeout(r, 600)); // let the bar's transition end
    await page.screenshot({ path: join(build, 'ui-dashboard.png'), fullPage: true });

    // The wrong token's two 401s were asked for; nothing else may complain.
    const unexpected = problems.filter((p) => !/status of 401/.test(p));
    assert.deepEqual(unexpected, [], 'console errors (a CSP violation shows here)');
  } finally {
    await browser.close();
    d.stop();
  }
});
