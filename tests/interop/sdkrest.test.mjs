// a2ad driven by the official A2A JavaScript client @a2a-js/sdk 1.3.0 through
// its HTTP+JSON (REST) transport: a ClientFactory that prefers 'HTTP+JSON'
// finds that interface in a2ad's card and runs the same scenarios as
// sdk1.test.mjs over /message:send, /tasks/{id}, /tasks/{id}:subscribe, ...
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { ClientFactory, ClientFactoryOptions, RestTransportFactory } from 'a2a-sdk-1/client';
import { Role, StreamResponse, TaskState, taskStateToJSON } from 'a2a-sdk-1';
import { startDaemon, startReceiver, STEP_MS, authedFetch } from './harness.mjs';

let daemon, receiver;

const bounded = (ms = 20000) => ({ signal: AbortSignal.timeout(ms) });
const factory = new ClientFactory(ClientFactoryOptions.createFrom(ClientFactoryOptions.default,
  // Every method of every binding needs the daemon's bearer token.
  { preferredTransports: ['HTTP+JSON'], transports: [new RestTransportFactory({ fetchImpl: authedFetch })] }));
const clients = new Map();
function client(path) {
  if (!clients.has(path)) clients.set(path, factory.createFromUrl(`${daemon.base}${path}`));
  return clients.get(path);
}
const processor = () => client('/');
const echo = () => client('/agents/echo/');

const userMessage = (text, configuration) => ({
  message: { messageId: randomUUID(), role: Role.ROLE_USER, parts: [{ content: { $case: 'text', value: text } }] },
  ...(configuration ? { configuration } : {}),
});
const textOf = (msg) => (msg?.parts ?? []).filter((p) => p.content?.$case === 'text').map((p) => p.content.value).join('\n');
const stateName = (s) => taskStateToJSON(s);
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const kindOf = (ev) => ev.payload?.$case;
const valueOf = (ev) => ev.payload?.value;
const taskIdOf = (ev) => (kindOf(ev) === 'task' ? valueOf(ev).id : valueOf(ev)?.taskId);
const stateOf = (ev) => valueOf(ev)?.status?.state;
const progressOf = (events) => events
  .filter((e) => kindOf(e) === 'statusUpdate' && typeof valueOf(e).status?.message?.metadata?.progress === 'number')
  .map((e) => valueOf(e).status.message.metadata.progress);
async function collect(iter, until = () => false) {
  const items = [];
  for await (const item of iter) {
    items.push(item);
    if (until(item)) break;
  }
  return items;
}
const TERMINAL = new Set([TaskState.TASK_STATE_COMPLETED, TaskState.TASK_STATE_FAILED,
  TaskState.TASK_STATE_CANCELED, TaskState.TASK_STATE_REJECTED]);

before(async () => {
  daemon = await startDaemon();
  receiver = await startReceiver();
});

after(async () => {
  await receiver?.close();
  const r = await daemon?.stop();
  assert.equal(r?.code, 0, `a2ad should exit 0 on SIGTERM; log:\n${daemon?.log()}`);
});

test('REST card: the factory picks the HTTP+JSON 1.0 interface', async () => {
  for (const c of [await processor(), await echo()]) {
    assert.equal(c.transport.protocolName, 'HTTP+JSON');
    assert.equal(c.protocolVersion, '1.0');
  }
  const iface = (await processor()).agentCard.supportedInterfaces.find((i) => i.protocolBinding === 'HTTP+JSON');
  assert.equal(iface.url, `${daemon.base}/`);
});

test('REST GET /extendedAgentCard: only with the bearer token (401 otherwise)', async () => {
  const anonymous = await new ClientFactory(ClientFactoryOptions.createFrom(ClientFactoryOptions.default,
    { preferredTransports: ['HTTP+JSON'] })).createFromUrl(`${daemon.base}/`);
  await assert.rejects(anonymous.getAgentCard(bounded()), (e) => {
    assert.equal(e.statusCode, 401, `${e.name}: ${e.message}`);
    assert.match(e.message, /authentication required/);
    return true;
  });
  const ext = await (await processor()).getAgentCard(bounded());
  assert.equal(ext.name, 'processor');
});

let processorTask;
test('REST POST /message:send (blocking): echo and processor', async () => {
  const task = await (await echo()).sendMessage(userMessage('hello over REST'), bounded());
  assert.match(task.id, UUID);
  assert.equal(stateName(task.status.state), 'TASK_STATE_COMPLETED');
  assert.equal(textOf(task.status.message), 'hello over REST');
  processorTask = await (await processor()).sendMessage(userMessage('process my data'), bounded());
  assert.equal(stateName(processorTask.status.state), 'TASK_STATE_COMPLETED');
  const art = processorTask.artifacts.find((a) => a.name === 'results.json');
  assert.equal(art.parts[0].content?.$case, 'data', JSON.stringify(art.parts)); // application/json: a data part
  assert.deepEqual(art.parts[0].content.value, { query: 'process my data', steps: 10 });
});

test('REST GET /tasks/{id} and GET /tasks', async () => {
  assert.ok(processorTask, 'needs the task of the previous case');
  const c = await processor();
  const got = await c.getTask({ id: processorTask.id }, bounded());
  assert.equal(got.id, processorTask.id);
  assert.deepEqual(got.artifacts, processorTask.artifacts);
  const short = await c.getTask({ id: processorTask.id, historyLength: 1 }, bounded());
  assert.equal(short.history.length, 1);
  const list = await c.transport.listTasks({ pageSize: 100 }, bounded());
  assert.ok(list.tasks.some((t) => t.id === processorTask.id), 'the task is listed');
  await assert.rejects(c.getTask({ id: randomUUID() }, bounded()), (e) => {
    assert.equal(e.name, 'TaskNotFoundError', `${e.name}: ${e.message}`);
    assert.equal(e.statusCode, 404);
    return true;
  });
});

test('REST POST /message:stream, then :subscribe mid-run', async () => {
  const c = await processor();
  const events = await collect(c.sendMessageStream(userMessage('stream my data'), bounded(30000)));
  assert.equal(kindOf(events[0]), 'task');
  assert.ok(progressOf(events).length >= 5);
  assert.equal(stateName(stateOf(events.at(-1))), 'TASK_STATE_COMPLETED');
  const first = await collect(c.sendMessageStream(userMessage('resubscribe to me'), bounded(30000)),
    (e) => (valueOf(e)?.status?.message?.metadata?.progress ?? 0) >= 0.3);
  const taskId = taskIdOf(first[0]);
  const rest = await collect(c.resubscribeTask({ id: taskId }, bounded(30000)));
  assert.equal(kindOf(rest[0]), 'task', 'SubscribeToTask opens with the Task');
  for (const e of rest) assert.equal(taskIdOf(e), taskId);
  assert.equal(stateName(stateOf(rest.at(-1))), 'TASK_STATE_COMPLETED');
});

test('REST POST /tasks/{id}:cancel: canceled, idempotent; a completed task is not cancelable (400)', async () => {
  const c = await processor();
  const sent = await c.sendMessage(userMessage('cancel me', { returnImmediately: true }), bounded());
  const canceled = await c.cancelTask({ id: sent.id }, bounded());
  assert.equal(stateName(canceled.status.state), 'TASK_STATE_CANCELED');
  await new Promise((r) => setTimeout(r, 2 * STEP_MS));
  const again = await c.cancelTask({ id: sent.id }, bounded());
  assert.equal(stateName(again.status.state), 'TASK_STATE_CANCELED');
  const done = await (await echo()).sendMessage(userMessage('already done'), bounded());
  await assert.rejects((await echo()).cancelTask({ id: done.id }, bounded()), (e) => {
    assert.equal(e.name, 'TaskNotCancelableError', `${e.name}: ${e.message}`);
    assert.equal(e.statusCode, 400);
    return true;
  });
});

const decode = (body) => StreamResponse.fromJSON(body);

test('REST push-config resources: create, get, list, POSTs with the token, delete', async () => {
  const c = await processor();
  const token = `tok-${randomUUID()}`;
  const path = `/hookrest-${randomUUID()}`;
  const sent = await c.sendMessage(userMessage('push my data', { returnImmediately: true }), bounded());
  const taskId = sent.id;
  const a = await c.createTaskPushNotificationConfig({ taskId, id: 'cfg-a', url: receiver.url(path), token }, bounded());
  assert.equal(a.id, 'cfg-a');
  assert.equal(a.taskId, taskId);
  const got = await c.getTaskPushNotificationConfig({ taskId, id: 'cfg-a' }, bounded());
  assert.ok(!got.token, 'the token is write-only: never read back');
  const list = await c.listTaskPushNotificationConfig({ taskId }, bounded());
  assert.deepEqual(list.configs.map((x) => x.id), ['cfg-a']);
  const posts = await receiver.waitFor((ps) => ps.some((p) => p.path === path && TERMINAL.has(stateOf(decode(p.body)))), 20000);
  const mine = posts.filter((p) => p.path === path);
  for (const p of mine) {
    assert.equal(p.headers['x-a2a-notification-token'], token);
    assert.equal(taskIdOf(decode(p.body)), taskId);
  }
  await c.deleteTaskPushNotificationConfig({ taskId, id: 'cfg-a' }, bounded());
  const after = await c.listTaskPushNotificationConfig({ taskId }, bounded());
  assert.deepEqual(after.configs, []);
  await assert.rejects(c.getTaskPushNotificationConfig({ taskId, id: 'cfg-a' }, bounded()), (e) => e.statusCode === 404);
});
