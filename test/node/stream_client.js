'use strict';
// A standard @grpc/grpc-js client of long-lived server streams, for the
// drain-signal tests and the streams scenario. It keeps STREAMS logical
// streams open on grpc.testing.TestService/StreamingOutputCall, each asking
// for one small response every INTERVAL_MS. When a stream ends with OK
// before its last response (the server's handler saw goaway.Draining), it
// resumes at once with a new stream, which grpc-js opens on a new
// connection; any other ending counts as failed (and it resumes too).
// Usage: node stream_client.js '<json options>' with {target,
// serviceConfig, streams, intervalMs, durationMs}; prints one JSON line:
// {"messages":n,"resumes":n,"failed":n,"ends":{code:n},"errors":[...],"gapsMs":[...],"perReplica":{name:n}}
// where gapsMs has, for every resume, the time between the last response
// before it and the first after it, and perReplica counts the logical
// streams by the replica serving them at the end.
const grpc = require('@grpc/grpc-js');

const opts = JSON.parse(process.argv[2]);
const client = new grpc.Client(opts.target, grpc.credentials.createInsecure(),
  opts.serviceConfig ? { 'grpc.service_config': opts.serviceConfig } : {});

// StreamingOutputCallRequest{response_parameters: n × {size: 8, interval_us}},
// encoded by hand: no proto needed.
function request(n, intervalUs) {
  const param = Buffer.from([0x08, 0x08, 0x10, ...varint(intervalUs)]);
  const one = Buffer.concat([Buffer.from([0x12, param.length]), param]);
  return Buffer.concat(Array(n).fill(one));
}
function varint(v) {
  const out = [];
  while (v > 0x7f) { out.push((v & 0x7f) | 0x80); v >>>= 7; }
  out.push(v);
  return out;
}

// Enough responses for the whole run: every stream ends by a drain first.
const req = request(Math.ceil(opts.durationMs / opts.intervalMs) + 10, opts.intervalMs * 1000);
const end = Date.now() + opts.durationMs;
let messages = 0, resumes = 0, failed = 0;
const errors = [], gapsMs = [];
const ends = {}; // stream ends by status code, other than OK
const current = [];
const live = new Set();

function open(i, lastAt) {
  const call = client.makeServerStreamRequest('/grpc.testing.TestService/StreamingOutputCall',
    (x) => x, (x) => x, req, new grpc.Metadata(), {});
  live.add(call);
  let first = true;
  call.on('metadata', (md) => { current[i] = String(md.get('x-replica')[0] || '(none)'); });
  call.on('data', () => {
    const now = Date.now();
    if (first && lastAt !== null) gapsMs.push(now - lastAt);
    first = false;
    lastAt = now;
    messages++;
  });
  call.on('status', (st) => {
    live.delete(call);
    if (Date.now() >= end) return;
    if (st.code !== grpc.status.OK) {
      failed++;
      ends[st.code] = (ends[st.code] || 0) + 1;
      if (errors.length < 5) errors.push(`${st.code} ${st.details}`);
    }
    resumes++;
    open(i, lastAt);
  });
  call.on('error', () => {}); // reported through 'status'
}

for (let i = 0; i < opts.streams; i++) open(i, null);
setTimeout(() => {
  const perReplica = {};
  for (const r of current) perReplica[r] = (perReplica[r] || 0) + 1;
  for (const c of live) c.cancel();
  client.close();
  console.log(JSON.stringify({ messages, resumes, failed, ends, errors, gapsMs, perReplica }));
  process.exit(0);
}, opts.durationMs);
