// a2ad driven by the official A2A JavaScript client @a2a-js/sdk 0.3.14
// through its HTTP+JSON (REST) transport: a ClientFactory that prefers
// 'HTTP+JSON' finds that interface in the 0.3 card's additionalInterfaces and
// runs the scenarios of sdk03.test.mjs over /v1/message:send, /v1/tasks/{id},
// /v1/tasks/{id}:subscribe, ... (0.3's proto JSON).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { ClientFactory, ClientFactoryOptions, RestTransport, RestTransportFactory } from 'a2a-sdk-03/client';
import { startDaemon, startReceiver, STEP_MS, BEARER_TOKEN, authedFetch } from './harness.mjs';

let daemon, receiver, processor, echo;

const bounded = (ms = 20000) => ({ signal: AbortSignal.timeout(ms) });
const userMessage = (text) => ({
  message: { kind: 'message', messageId: randomUUID(), role: 'user', parts: [{ kind: 'text', text }] },
});
const textOf = (msg) => (msg?.parts ?? []).filter((p) => p.kind === 'text').map((p) => p.text).join('\n');
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const TERMINAL = new Set(['completed', 'failed', 'canceled', 'rejected']);
const progressOf = (events) => events
  .filter((e) => e.kind === 'status-update' && typeof e.status?.message?.metadata?.progress === 'number')
  .map((e) => e.status.message.metadata.progress);
async function collect(iter, until = () => false) {
  const items = [];
  for await (const item of iter) {
    items.push(item);
    if (until(item)) break;
  }
  return items;
}

before(async () => {
  daemon = await startDaemon();
  receiver = await startReceiver();
  const factory = new ClientFactory(ClientFactoryOptions.createFrom(ClientFactoryOptions.default,
    { preferredTransports: ['HTTP+JSON'], transports: [new RestTransportFactory({ fetchImpl: authedFetch })] }));
  processor = await factory.createFromUrl(`${daemon.base}/`);
  echo = await factory.createFromUrl(`${daemon.base}/agents/echo/`);
});

after(async () => {
  await receiver?.close();
  const r = await daemon?.stop();
  assert.equal(r?.code, 0, `a2ad should exit 0 on SIGTERM; log:\n${daemon?.log()}`);
});

test('REST 0.3 card: the factory picks the HTTP+JSON interface of additionalInterfaces', async () => {
  for (const c of [processor, echo]) assert.ok(c.transport instanceof RestTransport);
  const iface = processor.agentCard.additionalInterfaces.find((i) => i.transport === 'HTTP+JSON');
  assert.equal(iface.url, `${daemon.base}/`);
});

test('REST 0.3 GET /v1/card: only with the bearer token', async () => {
  const anonymous = await new ClientFactory(ClientFactoryOptions.createFrom(ClientFactoryOptions.default,
    { preferredTransports: ['HTTP+JSON'] })).createFromUrl(`${daemon.base}/`);
  await assert.rejects(anonymous.getAgentCard(bounded()), { name: 'AuthenticatedExtendedCardNotConfiguredError' });
  const ext = await processor.getAgentCard(bounded());
  assert.equal(ext.name, 'processor');
  assert.equal(ext.securitySchemes.bearer.scheme, 'bearer');
  assert.deepEqual(ext.security, [{ bearer: [] }, { apiKey: [] }]);
  assert.equal(ext.securitySchemes.apiKey.in, 'header');
  const byHeader = await anonymous.getAgentCard({ ...bounded(), serviceParameters: { Authorization: `Bearer ${BEARER_TOKEN}` } });
  assert.equal(byHeader.name, 'processor');
});

let processorTask;
test('REST 0.3 POST /v1/message:send (blocking): echo and processor', async () => {
  const task = await echo.sendMessage({ ...userMessage('hello over 0.3 REST'), configuration: { blocking: true } }, bounded());
  assert.equal(task.kind, 'task');
  assert.match(task.id, UUID);
  assert.equal(task.status.state, 'completed');
  assert.equal(textOf(task.status.message), 'hello over 0.3 REST');
  assert.equal(task.status.message.role, 'agent');
  processorTask = await processor.sendMessage({ ...userMessage('process my data'), configuration: { blocking: true } }, bounded());
  assert.equal(processorTask.status.state, 'completed');
  const art = processorTask.artifacts?.find((a) => a.name === 'results.json');
  assert.ok(art, JSON.stringify(processorTask.artifacts));
  assert.equal(art.parts[0].kind, 'data');
  assert.deepEqual(art.parts[0].data, { query: 'process my data', steps: 10 });
  assert.equal(processorTask.history[0].role, 'user');
  assert.equal(textOf(processorTask.history[0]), 'process my data');
});

test('REST 0.3 GET /v1/tasks/{id}; unknown id: TaskNotFoundError', async () => {
  assert.ok(processorTask, 'needs the task of the previous case');
  const got = await processor.getTask({ id: processorTask.id }, bounded());
  assert.equal(got.id, processorTask.id);
  assert.equal(got.status.state, 'completed');
  assert.deepEqual(got.artifacts, processorTask.artifacts);
  const short = await processor.getTask({ id: processorTask.id, historyLength: 1 }, bounded());
  assert.equal(short.history.length, 1);
  await assert.rejects(processor.getTask({ id: randomUUID() }, bounded()), { name: 'TaskNotFoundError' });
});

test('REST 0.3 POST /v1/message:stream, then :subscribe mid-run', async () => {
  const events = await collect(processor.sendMessageStream(userMessage('stream my data'), bounded(30000)));
  assert.equal(events[0].kind, 'task');
  const taskId = events[0].id;
  for (const e of events.slice(1)) assert.equal(e.taskId, taskId);
  assert.ok(progressOf(events).length >= 5, progressOf(events).join(', '));
  assert.ok(events.some((e) => e.kind === 'artifact-update' && e.artifact?.name === 'results.json'));
  const last = events.at(-1);
  assert.equal(last.kind, 'status-update');
  assert.equal(last.final, true);
  assert.equal(last.status.state, 'completed');
  assert.equal(events.filter((e) => e.final).length, 1);
  const first = await collect(processor.sendMessageStream(userMessage('resubscribe to me'), bounded(30000)),
    (e) => (e.status?.message?.metadata?.progress ?? 0) >= 0.3);
  const id = first[0].id;
  const rest = await collect(processor.resubscribeTask({ id }, bounded(30000)));
  for (const e of rest) assert.equal(e.kind === 'task' ? e.id : e.taskId, id);
  assert.equal(rest.at(-1).status.state, 'completed');
  assert.equal(rest.at(-1).final, true);
});

test('REST 0.3 POST /v1/tasks/{id}:cancel: canceled; again: TaskNotCancelableError', async () => {
  const sent = await processor.sendMessage({ ...userMessage('cancel me'), configuration: { blocking: false } }, bounded());
  assert.ok(['submitted', 'working'].includes(sent.status.state), sent.status.state);
  const canceled = await processor.cancelTask({ id: sent.id }, bounded());
  assert.equal(canceled.status.state, 'canceled');
  await new Promise((r) => setTimeout(r, 2 * STEP_MS));
  assert.equal((await processor.getTask({ id: sent.id }, bounded())).status.state, 'canceled');
  await assert.rejects(processor.cancelTask({ id: sent.id }, bounded()), { name: 'TaskNotCancelableError' });
});

test('REST 0.3 push-config resources: set, get, list, POSTs with the token, delete', async () => {
  const token = `tok-${randomUUID()}`;
  const url = receiver.url(`/hookrest03-${randomUUID()}`);
  const sent = await processor.sendMessage({ ...userMessage('push my data'), configuration: { blocking: false } }, bounded());
  const taskId = sent.id;
  const set = await processor.setTaskPushNotificationConfig({ taskId, pushNotificationConfig: { id: 'cfg-1', url, token } }, bounded());
  assert.equal(set.taskId, taskId);
  assert.equal(set.pushNotificationConfig.id, 'cfg-1');
  assert.equal(set.pushNotificationConfig.url, url);
  const got = await processor.getTaskPushNotificationConfig({ id: taskId, pushNotificationConfigId: 'cfg-1' }, bounded());
  assert.equal(got.taskId, taskId);
  assert.equal(got.pushNotificationConfig.url, url);
  assert.ok(!got.pushNotificationConfig.token, 'the token is write-only: never read back');
  const list = await processor.listTaskPushNotificationConfig({ id: taskId }, bounded());
  assert.deepEqual(list.map((c) => c.pushNotificationConfig.id), ['cfg-1']);
  const posts = await receiver.waitFor((ps) => ps.some((p) => p.path === new URL(url).pathname && TERMINAL.has(p.body?.status?.state)), 20000);
  for (const p of posts.filter((p) => p.path === new URL(url).pathname)) {
    assert.equal(p.headers['x-a2a-notification-token'], token);
    assert.equal(p.body.id, taskId);
  }
  await processor.deleteTaskPushNotificationConfig({ id: taskId, pushNotificationConfigId: 'cfg-1' }, bounded());
  assert.deepEqual(await processor.listTaskPushNotificationConfig({ id: taskId }, bounded()), []);
  await assert.rejects(processor.getTaskPushNotificationConfig({ id: taskId, pushNotificationConfigId: 'cfg-1' }, bounded()));
});
