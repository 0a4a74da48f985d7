// a2ad driven by the official A2A JavaScript client @a2a-js/sdk 0.3.14
// (protocol 0.3: message/send, message/stream, tasks/get, tasks/cancel,
// tasks/resubscribe, tasks/pushNotificationConfig/*), through its
// ClientFactory / Client API, as an application would use it.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { ClientFactory, ClientFactoryOptions, DefaultAgentCardResolver, JsonRpcTransportFactory } from 'a2a-sdk-03/client';
import { startDaemon, startReceiver, STEP_MS, BEARER_TOKEN, authedFetch } from './harness.mjs';

let daemon, receiver, processor, echo;

// Every SDK call gets an abort signal, so a daemon that never answers (or a
// stream that never ends) fails the case instead of hanging the suite.
const bounded = (ms = 20000) => ({ signal: AbortSignal.timeout(ms) });

const userMessage = (text) => ({
  message: { kind: 'message', messageId: randomUUID(), role: 'user', parts: [{ kind: 'text', text }] },
});
const textOf = (msg) => (msg?.parts ?? []).filter((p) => p.kind === 'text').map((p) => p.text).join('\n');
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const TERMINAL = new Set(['completed', 'failed', 'canceled', 'rejected']);

// The progress figures carried by status-update events (metadata.progress of
// their agent message), in the order received.
const progressOf = (events) => events
  .filter((e) => e.kind === 'status-update' && typeof e.status?.message?.metadata?.progress === 'number')
  .map((e) => e.status.message.metadata.progress);

function assertIncreasing(values, what) {
  for (let i = 1; i < values.length; i++)
    assert.ok(values[i] > values[i - 1], `${what}: progress went from ${values[i - 1]} to ${values[i]} (${values.join(', ')})`);
}

// The state of the event, whatever its kind (task, status-update).
const stateOf = (e) => e?.status?.state;

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
  // Every method needs the token: the SDK's JSON-RPC transport sends it.
  const factory = new ClientFactory(ClientFactoryOptions.createFrom(ClientFactoryOptions.default,
    { transports: [new JsonRpcTransportFactory({ fetchImpl: authedFetch })] }));
  processor = await factory.createFromUrl(`${daemon.base}/`);
  echo = await factory.createFromUrl(`${daemon.base}/agents/echo/`);
});

after(async () => {
  await receiver?.close();
  const r = await daemon?.stop();
  assert.equal(r?.code, 0, `a2ad should exit 0 on SIGTERM; log:\n${daemon?.log()}`);
});

// The public card, fetched the way ClientFactory.createFromUrl fetches it.
const resolver = new DefaultAgentCardResolver({ fetchImpl: (url, init) => fetch(url, { ...init, ...bounded() }) });

test('0.3 card: the client resolves each agent card and picks its JSON-RPC URL', async () => {
  const card = await resolver.resolve(`${daemon.base}/`);
  assert.equal(card.name, 'processor');
  assert.equal(card.protocolVersion, '0.3.0');
  assert.equal(card.url, `${daemon.base}/`);
  assert.equal(card.preferredTransport, 'JSONRPC');
  assert.equal(card.capabilities.streaming, true);
  assert.equal(card.capabilities.pushNotifications, true);
  assert.ok(card.skills.some((s) => s.id === 'process'), 'the processor card lists its "process" skill');
  assert.equal(card.supportsAuthenticatedExtendedCard, true, 'with [server] auth_bearer_tokens the card announces the extended card');
  assert.equal(card.securitySchemes?.bearer?.scheme, 'bearer');
  const echoCard = await resolver.resolve(`${daemon.base}/agents/echo/`);
  assert.equal(echoCard.name, 'echo');
  assert.equal(echoCard.url, `${daemon.base}/agents/echo`);
});

test('0.3 agent/getAuthenticatedExtendedCard: only with the bearer token', async () => {
  const c = await new ClientFactory().createFromUrl(`${daemon.base}/`);
  // HTTP 401 with the JSON-RPC error -32007, which the 0.3 client maps to its own error class
  const refused = { name: 'AuthenticatedExtendedCardNotConfiguredError' };
  await assert.rejects(c.getAgentCard(bounded()), refused, 'no token: refused');
  await assert.rejects(c.getAgentCard({ ...bounded(), serviceParameters: { Authorization: 'Bearer not-the-token-at-all' } }),
    refused, 'a wrong token: refused');
  const ext = await c.getAgentCard({ ...bounded(), serviceParameters: { Authorization: `Bearer ${BEARER_TOKEN}` } });
  assert.equal(ext.name, 'processor');
  assert.equal(ext.url, `${daemon.base}/`);
});

test('0.3 message/send (blocking): echo returns a completed Task with the text', async () => {
  const task = await echo.sendMessage(userMessage('hello from the 0.3 client'), bounded());
  assert.equal(task.kind, 'task');
  assert.match(task.id, UUID);
  assert.match(task.contextId, UUID);
  assert.equal(task.status.state, 'completed');
  assert.equal(textOf(task.status.message), 'hello from the 0.3 client');
  assert.equal(task.status.message.role, 'agent');
});

let processorTask;
test('0.3 message/send (blocking): processor runs its ten steps and returns its artifact', async () => {
  processorTask = await processor.sendMessage(userMessage('process my data'), bounded());
  assert.equal(processorTask.kind, 'task');
  assert.match(processorTask.id, UUID);
  assert.equal(processorTask.status.state, 'completed');
  assert.equal(textOf(processorTask.status.message), 'Processing complete!');
  const art = processorTask.artifacts?.find((a) => a.name === 'results.json');
  assert.ok(art, `a results.json artifact: ${JSON.stringify(processorTask.artifacts)}`);
  assert.equal(art.parts[0].kind, 'data'); // application/json: an A2A data part
  assert.deepEqual(art.parts[0].data, { query: 'process my data', steps: 10 });
  assert.equal(processorTask.history[0].role, 'user');
  assert.equal(textOf(processorTask.history[0]), 'process my data');
});

test('0.3 tasks/get returns the same task', async () => {
  assert.ok(processorTask, 'needs the task of the previous case');
  const got = await processor.getTask({ id: processorTask.id }, bounded());
  assert.equal(got.id, processorTask.id);
  assert.equal(got.contextId, processorTask.contextId);
  assert.equal(got.status.state, 'completed');
  assert.equal(textOf(got.status.message), 'Processing complete!');
  assert.deepEqual(got.artifacts, processorTask.artifacts);
  const short = await processor.getTask({ id: processorTask.id, historyLength: 1 }, bounded());
  assert.equal(short.history.length, 1, 'historyLength: 1 keeps one message');
});

test('0.3 tasks/get of an unknown id: TaskNotFound (-32001)', async () => {
  await assert.rejects(processor.getTask({ id: randomUUID() }, bounded()),
    (e) => e.constructor.name === 'TaskNotFoundJSONRPCError' || /-32001/.test(String(e?.errorResponse?.error?.code ?? e.message)));
});

test('0.3 message/stream: status updates with increasing progress, ending completed', async () => {
  const events = await collect(processor.sendMessageStream(userMessage('stream my data'), bounded(30000)));
  assert.ok(events.length > 3, `more than one event (got ${events.length}: ${events.map((e) => e.kind).join(',')})`);
  assert.equal(events[0].kind, 'task', 'the stream opens with the Task');
  const taskId = events[0].id;
  for (const e of events.slice(1)) assert.equal(e.taskId, taskId, 'every event names the task');
  const progress = progressOf(events);
  assert.ok(progress.length >= 5, `several progress updates (got ${progress.join(', ')})`);
  assertIncreasing(progress, 'message/stream');
  assert.equal(progress.at(-1), 1);
  assert.ok(events.some((e) => e.kind === 'artifact-update' && e.artifact?.name === 'results.json'), 'the artifact arrives as an artifact-update');
  const last = events.at(-1);
  assert.equal(last.kind, 'status-update');
  assert.equal(last.final, true);
  assert.equal(last.status.state, 'completed');
  assert.equal(textOf(last.status.message), 'Processing complete!');
  assert.equal(events.filter((e) => e.final).length, 1, 'exactly one final event');
});

test('0.3 tasks/resubscribe mid-run receives the remaining events', async () => {
  // Leave the stream after a few progress updates (the client goes away; the
  // job must go on), then resubscribe and follow it to the end.
  const first = await collect(processor.sendMessageStream(userMessage('resubscribe to me'), bounded(30000)),
    (e) => (e.status?.message?.metadata?.progress ?? 0) >= 0.3);
  const taskId = first[0].id;
  const seen = progressOf(first);
  assert.ok(seen.length >= 1 && seen.at(-1) < 1, `left the stream mid-run (progress ${seen.join(', ')})`);
  const rest = await collect(processor.resubscribeTask({ id: taskId }, bounded(30000)));
  assert.ok(rest.length >= 2, `events after resubscribing (got ${rest.length})`);
  for (const e of rest) assert.equal(e.kind === 'task' ? e.id : e.taskId, taskId);
  const progress = progressOf(rest);
  assert.ok(progress.length >= 1, 'progress updates arrive after resubscribing');
  assert.ok(progress[0] > seen.at(-1) || progress[0] === seen.at(-1), 'no step from before the disconnect is replayed out of order');
  assertIncreasing(progress, 'tasks/resubscribe');
  const last = rest.at(-1);
  assert.equal(last.kind, 'status-update');
  assert.equal(last.final, true);
  assert.equal(last.status.state, 'completed');
  const got = await processor.getTask({ id: taskId }, bounded());
  assert.equal(got.status.state, 'completed', 'leaving the first stream did not cancel the job');
});

test('0.3 tasks/cancel of a running processor job gives canceled', async () => {
  const sent = await processor.sendMessage({ ...userMessage('cancel me'), configuration: { blocking: false } }, bounded());
  assert.match(sent.id, UUID);
  assert.ok(['submitted', 'working'].includes(sent.status.state), `non-blocking send answers at once (state ${sent.status.state})`);
  const canceled = await processor.cancelTask({ id: sent.id }, bounded());
  assert.equal(canceled.id, sent.id);
  assert.equal(canceled.status.state, 'canceled');
  assert.equal(textOf(canceled.status.message), 'Task canceled on request');
  // The job stays canceled: no later step completes it.
  await new Promise((r) => setTimeout(r, 2 * STEP_MS));
  const got = await processor.getTask({ id: sent.id }, bounded());
  assert.equal(got.status.state, 'canceled');
  await assert.rejects(processor.cancelTask({ id: sent.id }, bounded()),
    (e) => e.constructor.name === 'TaskNotCancelableJSONRPCError', 'a second cancel: TaskNotCancelable (-32002)');
});

test('0.3 push config: set, get, list, POSTs with the token, delete', async () => {
  const token = `tok-${randomUUID()}`;
  const url = receiver.url(`/hook03-${randomUUID()}`);
  const sent = await processor.sendMessage({ ...userMessage('push my data'), configuration: { blocking: false } }, bounded());
  const taskId = sent.id;
  const set = await processor.setTaskPushNotificationConfig(
    { taskId, pushNotificationConfig: { id: 'cfg-1', url, token } }, bounded());
  assert.equal(set.taskId, taskId);
  assert.equal(set.pushNotificationConfig.url, url);
  assert.equal(set.pushNotificationConfig.id, 'cfg-1');

  const got = await processor.getTaskPushNotificationConfig({ id: taskId, pushNotificationConfigId: 'cfg-1' }, bounded());
  assert.equal(got.taskId, taskId);
  assert.equal(got.pushNotificationConfig.url, url);
  assert.equal(got.pushNotificationConfig.token, undefined, 'the token is write-only: never read back');

  const list = await processor.listTaskPushNotificationConfig({ id: taskId }, bounded());
  assert.ok(Array.isArray(list), 'list answers an array');
  assert.deepEqual(list.map((c) => c.pushNotificationConfig.id), ['cfg-1']);

  // The receiver gets the job's events with the token, up to the final state.
  const posts = await receiver.waitFor((ps) => ps.some((p) => p.path === new URL(url).pathname && p.body?.status?.state === 'completed'), 20000);
  const mine = posts.filter((p) => p.path === new URL(url).pathname);
  assert.ok(mine.length >= 2, `several POSTs (got ${mine.length})`);
  for (const p of mine) {
    assert.equal(p.method, 'POST');
    assert.equal(p.headers['x-a2a-notification-token'], token);
    assert.match(p.headers['content-type'], /^application\/json/);
    assert.equal(p.body.id, taskId, 'the 0.3 webhook body is the Task');
  }
  assert.equal(mine.at(-1).body.status.state, 'completed', 'the last POST carries the final state');

  await processor.deleteTaskPushNotificationConfig({ id: taskId, pushNotificationConfigId: 'cfg-1' }, bounded());
  const after = await processor.listTaskPushNotificationConfig({ id: taskId }, bounded());
  assert.deepEqual(after, [], 'delete removes it');
  await assert.rejects(processor.getTaskPushNotificationConfig({ id: taskId, pushNotificationConfigId: 'cfg-1' }, bounded()));
});

test('0.3 message/send with a pushNotificationConfig: the receiver gets every step with the token', async () => {
  const token = `tok-${randomUUID()}`;
  const path = `/hook03-send-${randomUUID()}`;
  const sent = await processor.sendMessage({
    ...userMessage('push my data'),
    configuration: { blocking: false, pushNotificationConfig: { url: receiver.url(path), token } },
  }, bounded());
  const posts = await receiver.waitFor((ps) => ps.some((p) => p.path === path && TERMINAL.has(p.body?.status?.state)), 20000);
  const mine = posts.filter((p) => p.path === path);
  for (const p of mine) {
    assert.equal(p.headers['x-a2a-notification-token'], token);
    assert.equal(p.body.id, sent.id);
  }
  assert.equal(mine.at(-1).body.status.state, 'completed');
  const progress = mine.map((p) => p.body.status?.message?.metadata?.progress).filter((x) => typeof x === 'number');
  assert.ok(progress.length >= 5, `progress reached the webhook (${progress.join(', ')})`);
  for (let i = 1; i < progress.length; i++) assert.ok(progress[i] >= progress[i - 1], 'webhook events arrive in order');
});
