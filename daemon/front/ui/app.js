// a2ad dashboard. Plain script, no build step. Every value from the daemon
// reaches the page through textContent, never as HTML.
'use strict';

const $ = (id) => document.getElementById(id);
const TOKEN_KEY = 'a2ad.adminToken';
const POLL_MS = 1000;
const TERMINAL = new Set(['completed', 'failed', 'canceled', 'rejected']);

let token = sessionStorage.getItem(TOKEN_KEY) || '';
let selected = null;   // id of the task shown in the detail panel
let agentsKnown = '';  // the agent list last drawn, to redraw selects only on change

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined && text !== null) e.textContent = String(text);
  return e;
}

function shortId(id) { return id ? id.slice(0, 8) : '?'; }

function when(ts) {
  if (!ts) return '';
  const d = new Date(ts);
  if (isNaN(d)) return ts;
  const s = Math.round((Date.now() - d.getTime()) / 1000);
  if (s < 5) return 'just now';
  if (s < 60) return s + ' s ago';
  if (s < 3600) return Math.floor(s / 60) + ' min ago';
  return d.toISOString().replace('T', ' ').slice(0, 19) + 'Z';
}

async function getJSON(path, admin) {
  const headers = {};
  if (admin) headers.Authorization = 'Bearer ' + token;
  const r = await fetch(path, { headers, cache: 'no-store' });
  let body = null;
  try { body = await r.json(); } catch (_) { /* not JSON */ }
  if (!r.ok) {
    const err = new Error((body && body.error) || ('HTTP ' + r.status));
    err.status = r.status;
    throw err;
  }
  return body;
}

async function postAdmin(path) {
  const r = await fetch(path, { method: 'POST', headers: { Authorization: 'Bearer ' + token } });
  let body = null;
  try { body = await r.json(); } catch (_) { /* not JSON */ }
  if (!r.ok) throw new Error((body && body.error) || ('HTTP ' + r.status));
  return body;
}

function setProgress(bar, fraction, state) {
  const pct = fraction === null || fraction === undefined ? 0 : Math.round(fraction * 100);
  bar.querySelector('.fill').style.width = pct + '%';
  // No progress reported (a job that ended early, or an agent without
  // steps): say so rather than draw a 0 % that never was.
  bar.querySelector('.pct').textContent = fraction === null || fraction === undefined ? '–' : pct + '%';
  bar.setAttribute('aria-valuenow', String(pct));
  bar.dataset.state = state || '';
}

function progressBar(fraction, state) {
  const bar = el('div', 'progress');
  bar.setAttribute('role', 'progressbar');
  bar.setAttribute('aria-valuemin', '0');
  bar.setAttribute('aria-valuemax', '100');
  bar.append(el('div', 'fill'), el('span', 'pct'));
  setProgress(bar, fraction, state);
  return bar;
}

function badge(state) {
  const b = el('span', 'badge ' + (state || ''), state || '?');
  return b;
}

// ---- mode: with or without an admin token ----

function drawMode(note) {
  const m = $('mode');
  $('token-forget').hidden = !token;
  $('token').placeholder = token ? 'admin token in use (this tab only)' : 'admin token ([server] admin_tokens)';
  if (note) { m.textContent = note; m.className = 'mode ro'; return; }
  if (token) { m.textContent = 'Admin token in use: tasks, webhooks and actions are available. It is kept in this tab only (sessionStorage).'; m.className = 'mode'; }
  else { m.textContent = 'Read-only: counters and agents from /healthz. Enter an admin token to see tasks, cancel them and replay webhooks.'; m.className = 'mode ro'; }
  if (!token) for (const id of ['d-cancel', 'd-replay', 'd-purge']) $(id).disabled = true;
}

// ---- counters and agents ----

function drawAgentSelects(names) {
  const key = names.join(',');
  if (key === agentsKnown) return;
  agentsKnown = key;
  const send = $('send-agent');
  const filt = $('f-agent');
  const keepSend = send.value, keepFilt = filt.value;
  send.replaceChildren(...names.map((n) => el('option', null, n)));
  filt.replaceChildren(el('option', null, 'all agents'), ...names.map((n) => el('option', null, n)));
  filt.firstChild.value = '';
  if (names.includes(keepSend)) send.value = keepSend;
  else if (names.includes('processor')) send.value = 'processor';
  filt.value = keepFilt;
}

async function refreshHealth() {
  try {
    const h = await getJSON('/healthz', false);
    $('conn').textContent = 'connected · ' + (h.status || 'ok');
    $('conn').dataset.state = 'ok';
    $('c-queued').textContent = h.jobsQueued;
    $('c-running').textContent = h.jobsRunning;
    $('c-tasks').textContent = h.tasks;
    $('c-streams').textContent = h.streams;
    const w = h.webhooks || {};
    $('c-wpending').textContent = w.pending;
    $('c-wdelivered').textContent = w.delivered;
    $('c-wretried').textContent = w.retried;
    $('c-wgivenup').textContent = w.givenUp;
    $('t-givenup').classList.toggle('warn', w.givenUp > 0);
    drawAgentSelects(h.agents || []);
    if (!token) drawAgentsPlain(h.agents || []);
  } catch (e) {
    $('conn').textContent = 'no answer from a2ad';
    $('conn').dataset.state = 'down';
  }
}

function drawAgentsPlain(names) {
  const tb = $('agents').tBodies[0];
  tb.replaceChildren(...names.map((n) => {
    const tr = el('tr');
    tr.append(el('td', null, n));
    for (let i = 0; i < 5; i++) tr.append(el('td', 'empty', '·'));
    return tr;
  }));
}

async function refreshAgents() {
  const j = await getJSON('/admin/v1/agents', true);
  const tb = $('agents').tBodies[0];
  tb.replaceChildren(...j.agents.map((a) => {
    const tr = el('tr');
    const name = el('td');
    name.append(el('b', null, a.name));
    name.title = a.description + ' (' + a.version + ')';
    tr.append(name);
    for (const s of ['submitted', 'working', 'completed', 'failed', 'canceled']) tr.append(el('td', null, a.tasks[s]));
    tr.dataset.agent = a.name;
    return tr;
  }));
}

// ---- tasks ----

async function refreshTasks() {
  const q = new URLSearchParams({ limit: '100' });
  if ($('f-agent').value) q.set('agent', $('f-agent').value);
  if ($('f-state').value) q.set('state', $('f-state').value);
  const j = await getJSON('/admin/v1/tasks?' + q, true);
  // several nodes on one database: each task's holder in a column
  document.body.classList.toggle('multi', (j.nodes || 0) > 1);
  const tb = $('tasks').tBodies[0];
  const rows = j.tasks.map((t) => {
    const tr = el('tr');
    tr.dataset.id = t.id;
    tr.dataset.state = t.state;
    if (t.id === selected) tr.className = 'sel';
    const idc = el('td');
    idc.append(el('code', null, shortId(t.id)));
    idc.title = t.id;
    const pc = el('td', 'pcol');
    pc.append(progressBar(t.progress, t.state));
    const st = el('td');
    st.append(badge(t.state));
    tr.append(idc, el('td', null, t.agent || '—'), el('td', 'ncol', t.node || '—'), st, pc, el('td', 'msg', t.message || ''), el('td', null, when(t.timestamp)));
    tr.addEventListener('click', () => { select(t.id); });
    return tr;
  });
  if (!rows.length) {
    const tr = el('tr');
    const td = el('td', 'empty', 'No tasks yet: send a job with the form, a2ctl or any A2A client.');
    td.colSpan = 7;
    tr.append(td);
    rows.push(tr);
  }
  tb.replaceChildren(...rows);
  $('tasks-note').textContent = j.nextCursor ? ('Showing ' + j.tasks.length + ' of ' + j.total + ' (most recently changed first).') : (j.total + ' task' + (j.total === 1 ? '' : 's') + '.');
}

function refreshTasksQuiet() { refreshTasks().catch(() => {}); }

function select(id) {
  if (id !== selected) $('d-note').textContent = '';
  selected = id;
  refreshDetail();
  refreshTasksQuiet();
}

function partText(p) {
  if (p.text !== undefined) return p.text;
  if (p.data !== undefined) return JSON.stringify(p.data);
  if (p.file) return '(file ' + (p.file.name || '') + ' ' + (p.file.mimeType || '') + ')';
  return '';
}

async function refreshDetail() {
  if (!selected || !token) { $('detail').hidden = true; return; }
  let j;
  try {
    j = await getJSON('/admin/v1/tasks/' + encodeURIComponent(selected), true);
  } catch (e) {
    $('d-note').textContent = e.message;
    $('d-note').className = 'note err';
    return;
  }
  const s = j.summary, t = j.task;
  $('detail').hidden = false;
  $('d-id').textContent = s.id;
  $('d-agent').textContent = s.agent || '—';
  $('d-node').textContent = s.node || '—';
  const st = $('d-state');
  st.textContent = s.state;
  st.className = 'badge ' + s.state;
  $('d-context').textContent = shortId(s.contextId);
  $('d-context').title = s.contextId;
  $('d-updated').textContent = when(s.timestamp);
  setProgress($('d-progress'), s.progress, s.state);
  $('d-step').textContent = s.message || '';
  $('d-cancel').disabled = TERMINAL.has(s.state) || !token;

  const hist = (t.history || []).map((m) => {
    const li = el('li');
    li.append(el('span', 'role ' + m.role, m.role));
    li.append(document.createTextNode((m.parts || []).map(partText).join(' ')));
    return li;
  });
  $('d-history').replaceChildren(...hist);

  const arts = (t.artifacts || []).map((a) => {
    const li = el('li');
    const md = a.metadata || {};
    li.append(el('b', null, a.name || a.artifactId));
    li.append(el('span', 'small-muted', '  ' + (md.mimeType || '') + (md.size !== undefined ? ', ' + md.size + ' bytes' : '')));
    const text = (a.parts || []).map(partText).join('\n');
    if (text) li.append(el('pre', null, text.length > 2000 ? text.slice(0, 2000) + '…' : text));
    return li;
  });
  if (!arts.length) arts.push(el('li', 'empty', 'none yet'));
  $('d-artifacts').replaceChildren(...arts);

  const w = j.webhooks || { count: 0, events: [] };
  const hooks = w.events.map((e) => {
    const li = el('li');
    li.append(el('code', null, e.eventId), el('br'));
    li.append(el('span', null, e.target), el('br'));
    li.append(el('span', 'small-muted', e.state + ' · ' + e.attempts + ' attempt' + (e.attempts === 1 ? '' : 's') + (e.nextAttempt ? ' · next ' + when(e.nextAttempt).replace(' ago', '') : '')));
    if (e.lastError) { li.append(el('br')); li.append(el('span', 'err', e.lastError)); }
    return li;
  });
  if (j.webhooks === null) hooks.push(el('li', 'empty', 'sent by node ' + (s.node || '?') + ': see its dashboard'));
  else if (!hooks.length) hooks.push(el('li', 'empty', 'nothing pending'));
  $('d-hooks').replaceChildren(...hooks);
  const gaveUp = (((t.metadata || {}).a2ad || {}).webhooksGivenUp || []).slice(-10).map((g) => {
    const li = el('li');
    li.append(el('code', null, g.eventId), el('br'), el('span', 'err', 'given up: ' + g.reason));
    return li;
  });
  $('d-gaveup').replaceChildren(...gaveUp);
  $('d-replay').disabled = $('d-purge').disabled = !token || w.count === 0;
}

// ---- actions ----

async function act(path, what) {
  const note = $('d-note');
  try {
    const r = await postAdmin(path);
    note.className = 'note';
    if (what === 'cancel') note.textContent = 'Task canceled.';
    else note.textContent = (r[what] || 0) + ' webhook event' + (r[what] === 1 ? '' : 's') + ' ' + what + '.';
  } catch (e) {
    note.className = 'note err';
    note.textContent = e.message;
  }
  await refreshDetail();
  refreshTasksQuiet();
}

async function send(ev) {
  ev.preventDefault();
  const agent = $('send-agent').value;
  const text = $('send-text').value.trim();
  const out = $('send-result');
  if (!agent || !text) return;
  const body = {
    jsonrpc: '2.0', id: Date.now(), method: 'message/send',
    params: {
      message: { kind: 'message', role: 'user', messageId: 'ui-' + Date.now() + '-' + Math.random().toString(16).slice(2), parts: [{ kind: 'text', text }] },
      configuration: { blocking: false },
    },
  };
  try {
    const r = await fetch('/agents/' + encodeURIComponent(agent), { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) });
    const j = await r.json();
    if (j.error) throw new Error(j.error.message);
    out.className = 'note';
    out.textContent = 'Started task ' + j.result.id + ' (' + j.result.status.state + ').';
    out.dataset.task = j.result.id;
    $('send-text').value = '';
    if (token) select(j.result.id);
  } catch (e) {
    out.className = 'note err';
    out.textContent = 'Not sent: ' + e.message;
  }
}

// ---- the loop ----

let busy = false;

async function tick() {
  if (busy) return; // a slow answer: skip a turn rather than pile up
  busy = true;
  try { await tickOnce(); } finally { busy = false; }
}

async function tickOnce() {
  await refreshHealth();
  if (token) {
    try {
      await Promise.all([refreshAgents(), refreshTasks(), refreshDetail()]);
      drawMode();
    } catch (e) {
      if (e.status === 401 || e.status === 403) {
        token = '';
        sessionStorage.removeItem(TOKEN_KEY);
        drawMode('The admin API refused the token: ' + e.message);
        $('tasks').tBodies[0].replaceChildren();
        $('detail').hidden = true;
      }
    }
  } else {
    const tb = $('tasks').tBodies[0];
    if (!tb.dataset.ro) {
      const tr = el('tr');
      const td = el('td', 'empty', 'Tasks need an admin token.');
      td.colSpan = 7;
      tr.append(td);
      tb.replaceChildren(tr);
      tb.dataset.ro = '1';
    }
  }
}

function start() {
  $('token-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const v = $('token').value.trim();
    if (!v) return;
    token = v;
    $('token').value = '';
    sessionStorage.setItem(TOKEN_KEY, token);
    delete $('tasks').tBodies[0].dataset.ro;
    drawMode();
    tick();
  });
  $('token-forget').addEventListener('click', () => {
    token = '';
    sessionStorage.removeItem(TOKEN_KEY);
    selected = null;
    $('detail').hidden = true;
    drawMode();
    tick();
  });
  $('send-form').addEventListener('submit', send);
  $('f-agent').addEventListener('change', refreshTasksQuiet);
  $('f-state').addEventListener('change', refreshTasksQuiet);
  $('d-close').addEventListener('click', () => { selected = null; $('detail').hidden = true; refreshTasksQuiet(); });
  $('d-cancel').addEventListener('click', () => act('/admin/v1/tasks/' + encodeURIComponent(selected) + '/cancel', 'cancel'));
  $('d-replay').addEventListener('click', () => act('/admin/v1/tasks/' + encodeURIComponent(selected) + '/webhooks/replay', 'replayed'));
  $('d-purge').addEventListener('click', () => act('/admin/v1/tasks/' + encodeURIComponent(selected) + '/webhooks/purge', 'purged'));
  drawMode();
  tick();
  setInterval(tick, POLL_MS);
}

start();
