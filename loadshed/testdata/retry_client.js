// A standard @grpc/grpc-js client that makes N sequential UnaryCalls to
// TARGET with the service config SERVICE_CONFIG, and prints one JSON line:
// {"ok": n, "failed": n, "served": {"<x-replica>": n}, "errors": [...]}.
//
//   node retry_client.js TARGET N SERVICE_CONFIG
//
// NODE_PATH must point at test/node/node_modules.
'use strict';
const grpc = require('@grpc/grpc-js');

const [target, nArg, serviceConfig] = process.argv.slice(2);
const n = Number(nArg);
const client = new grpc.Client(target, grpc.credentials.createInsecure(), {
  'grpc.service_config': serviceConfig,
});
const result = { ok: 0, failed: 0, served: {}, errors: [] };
const identity = (b) => b;

function call(i) {
  if (i >= n) {
    console.log(JSON.stringify(result));
    client.close();
    return;
  }
  let replica = '';
  const c = client.makeUnaryRequest(
    '/grpc.testing.TestService/UnaryCall', identity, identity, Buffer.alloc(0),
    { deadline: Date.now() + 10000 },
    (err) => {
      if (err) {
        result.failed++;
        if (result.errors.length < 5) result.errors.push(`${err.code}: ${err.details}`);
      } else {
        result.ok++;
        result.served[replica] = (result.served[replica] || 0) + 1;
      }
      call(i + 1);
    });
  c.on('metadata', (md) => { replica = String(md.get('x-replica')[0] || ''); });
}
call(0);
