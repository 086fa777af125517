'use strict';
// A standard @grpc/grpc-js client with a weighted_round_robin service
// config, driven by orca/wrr_test.go. It sends UnaryCall at a constant
// arrival rate (open loop) and counts which replica (x-replica response
// header) served each call, separately for the warm-up and each
// measurement window. Usage: node wrr_client.js '<json options>'
// with {target, serviceConfig, rate, warmupMs, windows, windowMs,
// deadlineMs}; prints one JSON line:
// {"counts":[{"name":n,...},...],"sent":n,"failed":n,"errors":[...]}
// where counts[0] is the warm-up and counts[i] the i-th window.
const grpc = require('@grpc/grpc-js');

const opts = JSON.parse(process.argv[2]);
const client = new grpc.Client(opts.target, grpc.credentials.createInsecure(), {
  'grpc.service_config': opts.serviceConfig,
});

const counts = Array.from({ length: opts.windows + 1 }, () => ({}));
const errors = [];
let sent = 0;
let done = 0;
let failed = 0;
let phase = 0; // index into counts; null once the run is over

function call() {
  const ph = phase;
  let replica = '(none)';
  const c = client.makeUnaryRequest(
    '/grpc.testing.TestService/UnaryCall', (x) => x, (x) => x, Buffer.alloc(0),
    new grpc.Metadata(), { deadline: Date.now() + opts.deadlineMs },
    (err) => {
      done++;
      if (err) {
        failed++;
        if (errors.length < 5) errors.push(err.message);
      } else {
        counts[ph][replica] = (counts[ph][replica] || 0) + 1;
      }
      if (phase === null && done === sent) finish();
    });
  c.on('metadata', (md) => {
    const v = md.get('x-replica');
    if (v.length > 0) replica = String(v[0]);
  });
}

function finish() {
  process.stdout.write(JSON.stringify({ counts, sent, failed, errors }) + '\n');
  client.close();
}

const start = Date.now();
const total = opts.warmupMs + opts.windows * opts.windowMs;
const timer = setInterval(() => {
  const elapsed = Date.now() - start;
  if (elapsed >= total) {
    clearInterval(timer);
    phase = null;
    if (done === sent) finish();
    return;
  }
  phase = elapsed < opts.warmupMs ? 0 : 1 + Math.floor((elapsed - opts.warmupMs) / opts.windowMs);
  const want = Math.floor((elapsed * opts.rate) / 1000);
  while (sent < want) {
    sent++;
    call();
  }
}, 2);
