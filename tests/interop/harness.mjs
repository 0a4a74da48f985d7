// harness - the real a2ad binary on a free loopback port, and a webhook receiver,
// for the interop tests. Everything here is bounded by a timeout, so a daemon
// that hangs fails the test instead of stalling `make test`.
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync, rmSync, existsSync } from 'node:fs';
import { randomUUID } from 'node:crypto';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));

/** The build directory: A2AD_BUILD (as for the Check suite), else ../../build. */
export function buildDir() {
  const b = process.env.A2AD_BUILD;
  return resolve(b && b.length ? b : join(here, '..', '..', 'build'));
}

/** The processor's step: long enough that a stream can be left and rejoined
 *  while the job runs (10 steps = 3 s), short enough to keep the suite quick. */
export const STEP_MS = 300;

/** The daemon's [server] auth_bearer_tokens: every JSON-RPC method needs it. */
export const BEARER_TOKEN = `interop-${randomUUID()}`;

/** fetch that presents BEARER_TOKEN, unless the call sets its own Authorization. */
export function authedFetch(url, init = {}) {
  const headers = new Headers(init.headers);
  if (!headers.has('Authorization')) headers.set('Authorization', `Bearer ${BEARER_TOKEN}`);
  return fetch(url, { ...init, headers });
}

/**
 * Starts a2ad with the processor (default agent) and echo plugins from the build
 * directory, listening on 127.0.0.1 with port 0, and waits until its log says
 * where it listens and that it is ready. Returns { base, port, stop, log }.
 */
export async function startDaemon({ timeoutMs = 15000 } = {}) {
  const build = buildDir();
  const bin = join(build, 'a2ad');
  if (!existsSync(bin)) throw new Error(`${bin} is missing: run make first`);
  const dir = mkdtempSync(join(tmpdir(), 'a2ad-interop-'));
  const conf = join(dir, 'a2ad.conf');
  writeFileSync(conf, [
    '[server]', 'listen = 127.0.0.1', 'port = 0', 'default_agent = processor',
    `auth_bearer_tokens = ${BEARER_TOKEN}`,
    '[workers]', 'threads = 2', 'shutdown_grace_s = 5',
    '[plugins]', `dir = ${join(build, 'plugins')}`, 'load = processor,echo', 'errors = fatal',
    // The default, durable store, in the test's own folder (removed after).
    '[tasks]', 'store = sqlite', `path = ${join(dir, 'a2ad.db')}`,
    '[webhooks]', 'backoff_initial_ms = 20', 'backoff_max_ms = 200', 'timeout_ms = 3000', 'flush_s = 5',
    // the receivers are on 127.0.0.1, which the SSRF guard refuses by default
    'allow_networks = 127.0.0.0/8, ::1/128',
    '[log]', 'level = info',
    '[agent.processor]', `step_ms = ${STEP_MS}`,
    '',
  ].join('\n'));

  const child = spawn(bin, ['-c', conf], { stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  child.stdout.setEncoding('utf8').on('data', (s) => { log += s; });
  child.stderr.setEncoding('utf8').on('data', (s) => { log += s; });
  const exited = new Promise((res) => child.once('exit', (code, sig) => res({ code, sig })));
  // Die with the test: a failed or interrupted run must not leave daemons behind.
  const reap = () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    if (!process.env.A2AD_KEEP_TEST_DIRS) rmSync(dir, { recursive: true, force: true });
  };
  process.once('exit', reap);
  for (const s of ['SIGINT', 'SIGTERM']) process.once(s, () => { reap(); process.exit(128 + (s === 'SIGINT' ? 2 : 15)); });

  const port = await new Promise((res, rej) => {
    const timer = setTimeout(() => { clearInterval(poll); rej(new Error(`a2ad not ready in ${timeoutMs} ms; log:\n${log}`)); }, timeoutMs);
    const poll = setInterval(() => {
      const m = /listening on http:\/\/127\.0\.0\.1:(\d+)/.exec(log);
      if (m && log.includes(' ready in ')) {
        clearTimeout(timer);
        clearInterval(poll);
        res(Number(m[1]));
      }
    }, 20);
    exited.then(({ code, sig }) => {
      clearTimeout(timer);
      clearInterval(poll);
      rej(new Error(`a2ad exited at start-up (code ${code}, signal ${sig}); log:\n${log}`));
    });
  });

  let stopped = null;
  /** SIGTERM, then SIGKILL if it has not exited within timeoutMs; returns the exit code. */
  async function stop(stopTimeoutMs = 10000) {
    if (!stopped) {
      stopped = (async () => {
        if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
        const t = setTimeout(() => child.kill('SIGKILL'), stopTimeoutMs);
        const r = await exited;
        clearTimeout(t);
        if (!process.env.A2AD_KEEP_TEST_DIRS) rmSync(dir, { recursive: true, force: true });
        return r;
      })();
    }
    return stopped;
  }
  return { base: `http://127.0.0.1:${port}`, port, stop, log: () => log };
}

/**
 * A webhook receiver on 127.0.0.1 (any free port). Every POST is kept as
 * { path, headers, body (parsed JSON or the raw text) } and answered 200.
 * waitFor(pred) resolves with the list once pred(list) is true, or rejects
 * after timeoutMs.
 */
export async function startReceiver() {
  const posts = [];
  const waiters = new Set();
  const server = createServer((req, res) => {
    let text = '';
    req.setEncoding('utf8');
    req.on('data', (c) => { text += c; });
    req.on('end', () => {
      let body = text;
      try { body = JSON.parse(text); } catch { /* keep the text: the test will say so */ }
      posts.push({ method: req.method, path: req.url, headers: req.headers, body });
      res.writeHead(200, { 'Content-Type': 'text/plain' }).end('ok');
      for (const w of waiters) w();
    });
  });
  await new Promise((res) => server.listen(0, '127.0.0.1', res));
  const { port } = server.address();
  function waitFor(pred, timeoutMs = 20000) {
    return new Promise((res, rej) => {
      const check = () => {
        if (pred(posts)) { done(); res(posts); }
      };
      const timer = setTimeout(() => {
        done();
        rej(new Error(`webhook receiver: condition not met in ${timeoutMs} ms; got ${posts.length} POSTs`));
      }, timeoutMs);
      function done() { clearTimeout(timer); waiters.delete(check); }
      waiters.add(check);
      check();
    });
  }
  return {
    url: (path = '/hook') => `http://127.0.0.1:${port}${path}`,
    posts,
    waitFor,
    close: () => new Promise((res) => { server.closeAllConnections?.(); server.close(() => res()); }),
  };
}
