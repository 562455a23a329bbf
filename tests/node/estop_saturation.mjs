// A Node.js operator client (@grpc/grpc-js) against `dream2flow serve`, the way an outside
// team would use the API: the repository's .proto files, the googleapis error protos, nothing
// from the Python side. Run by tests/test_service_node.py with one JSON argument:
//   {address, operator_token, viewer_token, task_id, video_sha256, depth_sha256,
//    protos_dir, googleapis_dir, health_streams, watch_streams}
// It opens `health_streams` unauthenticated grpc.health Watch streams and `watch_streams`
// viewer WatchTask streams, times an operator's EmergencyStop, and decides from the
// google.rpc.Status details alone whether two refused calls are worth retrying.
// Prints one JSON line with what it saw.
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import grpc from '@grpc/grpc-js';
import protoLoader from '@grpc/proto-loader';
import protobuf from 'protobufjs';

const args = JSON.parse(process.argv[2]);
const creds = grpc.credentials.createInsecure();
const ownConnection = { 'grpc.use_local_subchannel_pool': 1 };

const def = protoLoader.loadSync(['dream2flow/v1/task.proto', 'dream2flow/v1/robot.proto'], {
  includeDirs: [args.protos_dir], keepCase: true, longs: String, enums: String, defaults: true, oneofs: true,
});
const d2f = grpc.loadPackageDefinition(def).dream2flow.v1;

// grpc.health.v1 messages (the two the Watch call needs).
const health = protobuf.parse(`syntax = "proto3"; package grpc.health.v1;
  message HealthCheckRequest { string service = 1; }
  message HealthCheckResponse { enum ServingStatus { UNKNOWN = 0; SERVING = 1; NOT_SERVING = 2; SERVICE_UNKNOWN = 3; }
                                ServingStatus status = 1; }`).root;
const HReq = health.lookupType('grpc.health.v1.HealthCheckRequest');
const HResp = health.lookupType('grpc.health.v1.HealthCheckResponse');

// google.rpc.Status and its details, from the googleapis protos.
const rpcRoot = new protobuf.Root();
rpcRoot.resolvePath = (origin, target) => (target.startsWith('google/rpc/') ? path.join(args.googleapis_dir, target)
  : protobuf.util.path.resolve(origin, target));
rpcRoot.loadSync(['google/rpc/status.proto', 'google/rpc/error_details.proto'], { keepCase: true });
const Status = rpcRoot.lookupType('google.rpc.Status');

function details(err) {
  const raw = err.metadata && err.metadata.get('grpc-status-details-bin')[0];
  if (!raw) return null;
  const st = Status.decode(raw);
  const out = { code: st.code, reason: null, retry_after_s: null, quota: [], fields: [] };
  for (const any of st.details) {
    const type = rpcRoot.lookupType(any.type_url.split('/').pop());
    const msg = type.toObject(type.decode(any.value), { longs: Number, defaults: true });
    if (type.name === 'ErrorInfo') { out.reason = msg.reason; out.domain = msg.domain; }
    if (type.name === 'RetryInfo') out.retry_after_s = Number(msg.retry_delay.seconds) + msg.retry_delay.nanos / 1e9;
    if (type.name === 'QuotaFailure') out.quota = msg.violations.map((v) => v.subject);
    if (type.name === 'BadRequest') out.fields = msg.field_violations.map((v) => v.field);
  }
  return out;
}

// The retry decision, from the details alone.
function decide(d) {
  return d && d.retry_after_s !== null ? `retry after ${d.retry_after_s} s` : 'do not retry';
}

function md(token) {
  const m = new grpc.Metadata();
  if (token) m.set('authorization', `Bearer ${token}`);
  return m;
}

const unary = (client, method, req, meta) => new Promise((resolve, reject) => {
  client[method](req, meta, { deadline: Date.now() + 10000 }, (err, resp) => (err ? reject(err) : resolve(resp)));
});

// First message of a server stream (the stream stays open), or its error.
const firstMessage = (call) => new Promise((resolve, reject) => {
  call.once('data', resolve);
  call.once('error', reject);
});

function healthWatch(client) {
  return client.makeServerStreamRequest('/grpc.health.v1.Health/Watch',
    (m) => Buffer.from(HReq.encode(HReq.create(m)).finish()), (b) => HResp.decode(b), { service: '' });
}

const result = {};
const open = [];
const clients = [];
try {
  const robot = new d2f.RobotService(args.address, creds, ownConnection);
  const tasks = new d2f.TaskService(args.address, creds, ownConnection);
  clients.push(robot, tasks);
  await unary(robot, 'GetRobotState', {}, md(args.operator_token)); // connected and warm

  const healthClients = [0, 1, 2, 3].map(() => new grpc.Client(args.address, creds, ownConnection));
  clients.push(...healthClients);
  const firsts = [];
  for (let i = 0; i < args.health_streams; i++) {
    const call = healthWatch(healthClients[i % 4]);
    open.push(call);
    firsts.push(firstMessage(call));
  }
  result.health_open = (await Promise.all(firsts)).filter((r) => r.status === 1).length;

  const viewer = new d2f.TaskService(args.address, creds, ownConnection);
  clients.push(viewer);
  const watches = [];
  for (let i = 0; i < args.watch_streams; i++) {
    const call = viewer.WatchTask({ task_id: args.task_id }, md(args.viewer_token));
    open.push(call);
    watches.push(firstMessage(call));
  }
  result.watch_open = (await Promise.all(watches)).length;

  // One more unauthenticated stream than the server allows: refused, with details.
  try {
    const extra = healthWatch(healthClients[0]);
    open.push(extra);
    await firstMessage(extra);
    result.extra_health = { admitted: true };
  } catch (err) {
    const d = details(err);
    result.extra_health = { code: grpc.status[err.code], reason: d && d.reason, retry_after_s: d && d.retry_after_s,
      quota: d && d.quota, decision: decide(d) };
  }

  const t0 = performance.now();
  const stop = await unary(robot, 'EmergencyStop', { reason: 'node client, server saturated' }, md(args.operator_token));
  result.estop_ms = performance.now() - t0;
  result.estop_mode = stop.state.mode;
  result.stopped_task_id = stop.stopped_task_id;

  // Motion while e-stopped: refused, and not worth retrying unchanged.
  try {
    await unary(tasks, 'SubmitTask', {
      instruction: 'move', box: { x0_px: 100, y0_px: 100, x1_px: 300, y1_px: 260 },
      video_sha256_hex: args.video_sha256, video_depth_sha256_hex: args.depth_sha256,
    }, md(args.operator_token));
    result.submit_during_estop = { accepted: true };
  } catch (err) {
    const d = details(err);
    result.submit_during_estop = { code: grpc.status[err.code], reason: d && d.reason, domain: d && d.domain,
      decision: decide(d) };
  }
  // An unknown id: NOT_FOUND with its reason, no retry.
  try {
    await unary(tasks, 'ListArtifacts', { task_id: 'nope' },
      md(args.viewer_token));
  } catch (err) {
    const d = details(err);
    result.unknown_task = { code: grpc.status[err.code], reason: d && d.reason, decision: decide(d) };
  }
} catch (err) {
  result.error = `${err.code !== undefined ? grpc.status[err.code] : ''} ${err.message}`;
} finally {
  for (const call of open) call.cancel();
  for (const c of clients) c.close();
}
console.log(JSON.stringify(result));
process.exit(result.error ? 1 : 0);
