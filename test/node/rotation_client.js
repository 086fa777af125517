// A standard @grpc/grpc-js client for the GOAWAY rotation tests: CALLERS
// concurrent callers make unary grpc.testing.TestService/UnaryCall calls
// (an empty buffer is a valid SimpleRequest, so no proto is loaded) for
// DURATION_MS, then print one JSON line: {"calls":N,"failed":N,"errors":[...]}.
//
//   node rotation_client.js ADDR [DURATION_MS] [CALLERS]
'use strict';
const grpc = require('@grpc/grpc-js');

const addr = process.argv[2];
const durationMs = Number(process.argv[3] || 5000);
const callers = Number(process.argv[4] || 8);
if (!addr) {
  console.error('usage: node rotation_client.js ADDR [DURATION_MS] [CALLERS]');
  process.exit(2);
}

const client = new grpc.Client(addr, grpc.credentials.createInsecure());
const ident = (x) => x;
let calls = 0;
let failed = 0;
const errors = [];
const end = Date.now() + durationMs;

function call() {
  return new Promise((resolve) => {
    const deadline = new Date(Date.now() + 10000);
    client.makeUnaryRequest('/grpc.testing.TestService/UnaryCall', ident, ident,
      Buffer.alloc(0), new grpc.Metadata(), { deadline }, (err) => {
        calls++;
        if (err) {
          failed++;
          if (errors.length < 5) errors.push(`${err.code} ${err.details}`);
        }
        resolve();
      });
  });
}

async function caller() {
  while (Date.now() < end) {
    await call();
  }
}

Promise.all(Array.from({ length: callers }, caller)).then(() => {
  client.close();
  console.log(JSON.stringify({ calls, failed, errors }));
});
