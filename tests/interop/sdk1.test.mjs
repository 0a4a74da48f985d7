// a2ad driven by the official A2A JavaScript client @a2a-js/sdk 1.3.0, which
// speaks A2A protocol 1.0 (PascalCase JSON-RPC methods: SendMessage,
// SendStreamingMessage, GetTask, CancelTask, SubscribeToTask,
// *TaskPushNotificationConfig*; ProtoJSON shapes; header A2A-Version: 1.0),
// through its ClientFactory / Client API. The v0.3 compatibility layer is left
// off on purpose: the client must find a 1.0 interface in a2ad's card.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { ClientFactory, ClientFactoryOptions, DefaultAgentCardResolver, JsonRpcTransportFactory } from 'a2a-sdk-1/client';
import { Role, StreamResponse, TaskState, taskStateToJSON } from 'a2a-sdk-1';
import { startDaemon, startReceiver, STEP_MS, BEARER_TOKEN, authedFetch } from './harness.mjs';

let daemon, receiver;

const bounded = (ms = 20000) => ({ signal: AbortSignal.timeout(ms) });

// Clients are made on first use, so that a card the 1.0 client cannot use
// fails the cases that need it, one by one, and not the whole file.
const clients = new Map();
function client(path) {
  if (!clients.has(path)) clients.set(path, new ClientFactory(ClientFactoryOptions.createFrom(ClientFactoryOptions.default,
    { transports: [new JsonRpcTransportFactory({ fetchImpl: authedFetch })] })).createFromUrl(`${daemon.base}${path}`));
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

// StreamResponse helpers: { payload: { $case: task|message|statusUpdate|artifactUpdate, value } }.
const kindOf = (ev) => ev.payload?.$case;
const valueOf = (ev) => ev.payload?.value;
const taskIdOf = (ev) => (kindOf(ev) === 'task' ? valueOf(ev).id : valueOf(ev)?.taskId);
const stateOf = (ev) => valueOf(ev)?.status?.state;
const progressOf = (events) => events
  .filter((e) => kindOf(e) === 'statusUpdate' && typeof valueOf(e).status?.message?.metadata?.progress === 'number')
  .map((e) => valueOf(e).status.message.metadata.progress);
function assertIncreasing(values, what) {
  for (let i = 1; i < values.length; i++)
    assert.ok(values[i] > values[i - 1], `${what}: progress went from ${values[i - 1]} to ${values[i]} (${values.join(', ')})`);
}
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

// The public card, fetched the way ClientFactory.createFromUrl fetches it
// (with A2A-Version: 1.0), then the interface the factory picks.
const resolver = new DefaultAgentCardResolver({ fetchImpl: (url, init) => fetch(url, { ...init, ...bounded() }) });

test('1.0 card: the client finds a JSON-RPC 1.0 interface in each agent card', async () => {
  const c = await processor();
  assert.equal(c.protocolVersion, '1.0', 'the client speaks 1.0 to a2ad');
  const card = await resolver.resolve(`${daemon.base}/`);
  assert.equal(card.name, 'processor');
  const iface = card.supportedInterfaces.find((i) => i.protocolBinding === 'JSONRPC' && i.protocolVersion === '1.0');
  assert.ok(iface, `a JSONRPC 1.0 interface: ${JSON.stringify(card.supportedInterfaces)}`);
  assert.equal(iface.url, `${daemon.base}/`);
  assert.equal(card.capabilities.pushNotifications, true);
  assert.equal(card.capabilities.streaming, true);
  assert.equal(card.capabilities.extendedAgentCard, true, 'with [server] auth_bearer_tokens the card announces the extended card');
  assert.ok(card.skills.some((s) => s.id === 'process'));
  const echoCard = await resolver.resolve(`${daemon.base}/agents/echo/`);
  assert.equal(echoCard.name, 'echo');
  assert.equal(echoCard.supportedInterfaces.find((i) => i.protocolVersion === '1.0')?.url, `${daemon.base}/agents/echo`);
  assert.equal((await echo()).protocolVersion, '1.0');
});

test('1.0 GetExtendedAgentCard: only with the bearer token', async () => {
  const c = await new ClientFactory().createFromUrl(`${daemon.base}/`);
  await assert.rejects(c.getAgentCard(bounded()), /authentication required/, 'no token: refused');
  await assert.rejects(c.getAgentCard({ ...bounded(), serviceParameters: { Authorization: 'Bearer not-the-token-at-all' } }),
    /authentication required/, 'a wrong token: refused');
  const ext = await c.getAgentCard({ ...bounded(), serviceParameters: { Authorization: `Bearer ${BEARER_TOKEN}` } });
  assert.equal(ext.name, 'processor');
  assert.equal(ext.supportedInterfaces[0].url, `${daemon.base}/`);
});

test('1.0 SendMessage (blocking): echo returns a completed Task with the text', async () => {
  const task = await (await echo()).sendMessage(userMessage('hello from the 1.x client'), bounded());
  assert.match(task.id, UUID, `a Task with an id: ${JSON.stringify(task)}`);
  assert.match(task.contextId, UUID);
  assert.equal(stateName(task.status.state), 'TASK_STATE_COMPLETED');
  assert.equal(task.status.message.role, Role.ROLE_AGENT);
  assert.equal(textOf(task.status.message), 'hello from the 1.x client');
});

let processorTask;
test('1.0 SendMessage (blocking): processor runs its ten steps and returns its artifact', async () => {
  processorTask = await (await processor()).sendMessage(userMessage('process my data'), bounded());
  assert.match(processorTask.id, UUID);
  assert.equal(stateName(processorTask.status.state), 'TASK_STATE_COMPLETED');
  assert.equal(textOf(processorTask.status.message), 'Processing complete!');
  const art = processorTask.artifacts.find((a) => a.name === 'results.json');
  assert.ok(art, `a results.json artifact: ${JSON.stringify(processorTask.artifacts)}`);
  assert.equal(art.parts[0].content?.$case, 'data', JSON.stringify(art.parts)); // application/json: a data part
  assert.deepEqual(art.parts[0].content.value, { query: 'process my data', steps: 10 });
  assert.equal(processorTask.history[0].role, Role.ROLE_USER);
  assert.equal(textOf(processorTask.history[0]), 'process my data');
});

test('1.0 GetTask returns the same task', async () => {
  assert.ok(processorTask, 'needs the task of the previous case');
  const c = await processor();
  const got = await c.getTask({ id: processorTask.id }, bounded());
  assert.equal(got.id, processorTask.id);
  assert.equal(got.contextId, processorTask.contextId);
  assert.equal(stateName(got.status.state), 'TASK_STATE_COMPLETED');
  assert.deepEqual(got.artifacts, processorTask.artifacts);
  const short = await c.getTask({ id: processorTask.id, historyLength: 1 }, bounded());
  assert.equal(short.history.length, 1, 'historyLength: 1 keeps one message');
});

test('1.0 GetTask of an unknown id: TaskNotFoundError with a TASK_NOT_FOUND ErrorInfo', async () => {
  await assert.rejects((await processor()).getTask({ id: randomUUID() }, bounded()), (e) => {
    assert.equal(e.name, 'TaskNotFoundError', `${e.name}: ${e.message}`);
    assert.equal(e.envelopeCode, -32001);
    assert.ok(Array.isArray(e.data) && e.data.some((d) => d.reason === 'TASK_NOT_FOUND' && d.domain === 'a2a-protocol.org'),
      `error.data carries the ErrorInfo: ${JSON.stringify(e.data)}`);
    return true;
  });
});

test('1.0 SendStreamingMessage: status updates with increasing progress, ending completed', async () => {
  const events = await collect((await processor()).sendMessageStream(userMessage('stream my data'), bounded(30000)));
  assert.ok(events.length > 3, `more than one event (got ${events.map(kindOf).join(',')})`);
  assert.equal(kindOf(events[0]), 'task', 'the stream opens with the Task');
  const taskId = valueOf(events[0]).id;
  for (const e of events) assert.equal(taskIdOf(e), taskId, 'every event names the task');
  const progress = progressOf(events);
  assert.ok(progress.length >= 5, `several progress updates (got ${progress.join(', ')})`);
  assertIncreasing(progress, 'SendStreamingMessage');
  assert.equal(progress.at(-1), 1);
  assert.ok(events.some((e) => kindOf(e) === 'artifactUpdate' && valueOf(e).artifact?.name === 'results.json'));
  const last = events.at(-1);
  assert.equal(kindOf(last), 'statusUpdate');
  assert.equal(stateName(stateOf(last)), 'TASK_STATE_COMPLETED', 'the stream ends after the final state');
  assert.equal(textOf(valueOf(last).status.message), 'Processing complete!');
  assert.equal(events.filter((e) => TERMINAL.has(stateOf(e))).length, 1, 'one terminal event, the last');
});

test('1.0 SubscribeToTask mid-run receives the remaining events', async () => {
  const c = await processor();
  const first = await collect(c.sendMessageStream(userMessage('resubscribe to me'), bounded(30000)),
    (e) => (valueOf(e)?.status?.message?.metadata?.progress ?? 0) >= 0.3);
  const taskId = taskIdOf(first[0]);
  const seen = progressOf(first);
  assert.ok(seen.length >= 1 && seen.at(-1) < 1, `left the stream mid-run (progress ${seen.join(', ')})`);
  const rest = await collect(c.resubscribeTask({ id: taskId }, bounded(30000)));
  assert.ok(rest.length >= 2, `events after resubscribing (got ${rest.length})`);
  assert.equal(kindOf(rest[0]), 'task', 'SubscribeToTask opens with the Task');
  for (const e of rest) assert.equal(taskIdOf(e), taskId);
  const progress = progressOf(rest);
  assert.ok(progress.length >= 1, 'progress updates arrive after resubscribing');
  assert.ok(progress[0] >= seen.at(-1), 'no step from before the disconnect is replayed out of order');
  assertIncreasing(progress, 'SubscribeToTask');
  assert.equal(stateName(stateOf(rest.at(-1))), 'TASK_STATE_COMPLETED');
  const got = await c.getTask({ id: taskId }, bounded());
  assert.equal(stateName(got.status.state), 'TASK_STATE_COMPLETED', 'leaving the first stream did not cancel the job');
});

test('1.0 CancelTask of a running processor job gives canceled', async () => {
  const c = await processor();
  const sent = await c.sendMessage(userMessage('cancel me', { returnImmediately: true }), bounded());
  assert.match(sent.id, UUID);
  assert.ok(['TASK_STATE_SUBMITTED', 'TASK_STATE_WORKING'].includes(stateName(sent.status.state)),
    `returnImmediately answers at once (state ${stateName(sent.status.state)})`);
  const canceled = await c.cancelTask({ id: sent.id }, bounded());
  assert.equal(canceled.id, sent.id);
  assert.equal(stateName(canceled.status.state), 'TASK_STATE_CANCELED');
  await new Promise((r) => setTimeout(r, 2 * STEP_MS));
  const got = await c.getTask({ id: sent.id }, bounded());
  assert.equal(stateName(got.status.state), 'TASK_STATE_CANCELED');
  // 1.0: "Cancel Task operations are idempotent" - a second cancel answers the
  // canceled Task; a task that ended otherwise cannot be canceled.
  const again = await c.cancelTask({ id: sent.id }, bounded());
  assert.equal(again.id, sent.id);
  assert.equal(stateName(again.status.state), 'TASK_STATE_CANCELED');
  const done = await (await echo()).sendMessage(userMessage('already done'), bounded());
  assert.equal(stateName(done.status.state), 'TASK_STATE_COMPLETED');
  await assert.rejects((await echo()).cancelTask({ id: done.id }, bounded()), (e) => {
    assert.equal(e.name, 'TaskNotCancelableError', `${e.name}: ${e.message}`);
    assert.equal(e.envelopeCode, -32002);
    return true;
  });
});

// A 1.0 webhook body is a StreamResponse; decode it with the SDK's own decoder.
const decode = (body) => StreamResponse.fromJSON(body);

test('1.0 push config: create, get, list, POSTs with token and Authorization, delete', async () => {
  const c = await processor();
  const token = `tok-${randomUUID()}`;
  const pathA = `/hook1-a-${randomUUID()}`, pathB = `/hook1-b-${randomUUID()}`;
  const sent = await c.sendMessage(userMessage('push my data', { returnImmediately: true }), bounded());
  const taskId = sent.id;
  const a = await c.createTaskPushNotificationConfig({ taskId, id: 'cfg-a', url: receiver.url(pathA), token }, bounded());
  assert.equal(a.taskId, taskId);
  assert.equal(a.id, 'cfg-a');
  assert.equal(a.url, receiver.url(pathA));
  await c.createTaskPushNotificationConfig({ taskId, id: 'cfg-b', url: receiver.url(pathB),
    authentication: { scheme: 'Bearer', credentials: 'cred-b' } }, bounded());

  const got = await c.getTaskPushNotificationConfig({ taskId, id: 'cfg-a' }, bounded());
  assert.equal(got.url, receiver.url(pathA));
  assert.ok(!got.token, 'the token is write-only: never read back');
  const list = await c.listTaskPushNotificationConfig({ taskId }, bounded());
  assert.deepEqual(list.configs.map((x) => x.id).sort(), ['cfg-a', 'cfg-b']);

  const done = (path) => (ps) => ps.some((p) => p.path === path && TERMINAL.has(stateOf(decode(p.body))));
  await receiver.waitFor(done(pathA), 20000);
  const posts = await receiver.waitFor(done(pathB), 20000);
  for (const [path, check] of [
    [pathA, (p) => assert.equal(p.headers['x-a2a-notification-token'], token)],
    [pathB, (p) => assert.equal(p.headers.authorization, 'Bearer cred-b', 'authentication becomes the Authorization header')],
  ]) {
    const mine = posts.filter((p) => p.path === path);
    assert.ok(mine.length >= 2, `several POSTs to ${path} (got ${mine.length})`);
    for (const p of mine) {
      check(p);
      assert.match(p.headers['content-type'], /^application\/(a2a\+)?json/);
      assert.ok(kindOf(decode(p.body)), `a StreamResponse body: ${JSON.stringify(p.body)}`);
      assert.equal(taskIdOf(decode(p.body)), taskId);
    }
    assert.equal(stateName(stateOf(decode(mine.at(-1).body))), 'TASK_STATE_COMPLETED', 'the last POST carries the final state');
  }

  await c.deleteTaskPushNotificationConfig({ taskId, id: 'cfg-a' }, bounded());
  const after = await c.listTaskPushNotificationConfig({ taskId }, bounded());
  assert.deepEqual(after.configs.map((x) => x.id), ['cfg-b'], 'delete removes only that config');
  await assert.rejects(c.getTaskPushNotificationConfig({ taskId, id: 'cfg-a' }, bounded()));
});

test('1.0 SendMessage with a taskPushNotificationConfig: the receiver gets every step with the token', async () => {
  const c = await processor();
  const token = `tok-${randomUUID()}`;
  const path = `/hook1-send-${randomUUID()}`;
  const sent = await c.sendMessage(userMessage('push my data',
    { returnImmediately: true, taskPushNotificationConfig: { url: receiver.url(path), token } }), bounded());
  const posts = await receiver.waitFor((ps) => ps.some((p) => p.path === path && TERMINAL.has(stateOf(decode(p.body)))), 20000);
  const mine = posts.filter((p) => p.path === path);
  for (const p of mine) {
    assert.equal(p.headers['x-a2a-notification-token'], token);
    assert.equal(taskIdOf(decode(p.body)), sent.id);
  }
  assert.equal(stateName(stateOf(decode(mine.at(-1).body))), 'TASK_STATE_COMPLETED');
  const progress = mine.map((p) => valueOf(decode(p.body))?.status?.message?.metadata?.progress).filter((x) => typeof x === 'number');
  assert.ok(progress.length >= 5, `progress reached the webhook (${progress.join(', ')})`);
  for (let i = 1; i < progress.length; i++) assert.ok(progress[i] >= progress[i - 1], 'webhook events arrive in order');
});
