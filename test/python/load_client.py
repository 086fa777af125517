"""A standard C-core gRPC client (Debian python3-grpcio) for grpcmgmt's tests.

CALLERS threads make unary grpc.testing.TestService/UnaryCall calls (an empty
message is a valid SimpleRequest, so no generated code is needed) over
CHANNELS channels for DURATION_MS, each with a deadline, and report which
replica served each call (the x-replica response header).

    python3 load_client.py '<json options>'

options: {"target", "serviceConfig", "callers", "channels", "durationMs",
"deadlineMs", "minResolutionMs", "rate"}; durationMs 0 runs until stdin
closes; rate > 0 makes it open loop (rate calls per second started on a
fixed schedule, whatever the replies) instead of CALLERS closed-loop callers.
Prints one JSON line, the shape the Go harness reads from every external
client:

    {"calls": n, "failed": n, "errors": [...], "byStatus": {"UNAVAILABLE": n},
     "startUnixMs": t0, "records": [[ms_since_t0_at_end, replica, status_code, latency_us], ...]}

Run it with the system python3 (/usr/bin/python3), where Debian installs grpc.
"""
import json
import sys
import threading
import time

import grpc

METHOD = "/grpc.testing.TestService/UnaryCall"


def new_channel(target, service_config_json, min_resolution_ms, own_connections):
    # [START channel] (docs/clients.md, Python: checked by a test)
    options = [
        ("grpc.service_config", service_config_json),
        ("grpc.enable_retries", 1),
        ("grpc.dns_min_time_between_resolutions_ms", min_resolution_ms),
    ]
    # [END channel]
    if own_connections:
        # C-core shares connections between the channels of a process that
        # have the same target and options (its global subchannel pool). The
        # harness models each channel as a client process of its own.
        options.append(("grpc.use_local_subchannel_pool", 1))
    # [START channel]
    channel = grpc.insecure_channel(target, options=options)
    # [END channel]
    return channel


def main():
    opts = json.loads(sys.argv[1])
    deadline_s = opts.get("deadlineMs", 10000) / 1000.0
    n = max(1, opts.get("channels", 1))
    channels = [
        new_channel(opts["target"], opts.get("serviceConfig", ""), opts.get("minResolutionMs", 30000), n > 1)
        for _ in range(n)
    ]
    calls = [ch.unary_unary(METHOD, request_serializer=None, response_deserializer=None) for ch in channels]
    stop = threading.Event()
    duration_ms = opts.get("durationMs", 5000)
    if duration_ms > 0:
        threading.Timer(duration_ms / 1000.0, stop.set).start()
    else:
        threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
    out = {"calls": 0, "failed": 0, "errors": [], "byStatus": {}, "startUnixMs": int(time.time() * 1000), "records": []}
    start = time.monotonic()
    lock = threading.Lock()

    def record(t0, replica, code, err):
        t1 = time.monotonic()
        with lock:
            out["calls"] += 1
            out["records"].append([int((t1 - start) * 1000), replica, code.value[0], int((t1 - t0) * 1e6)])
            if code != grpc.StatusCode.OK:
                out["failed"] += 1
                out["byStatus"][code.name] = out["byStatus"].get(code.name, 0) + 1
                if len(out["errors"]) < 5:
                    out["errors"].append("%s %s" % (code.name, err))

    def caller(i):
        call = calls[i % len(calls)]
        while not stop.is_set():
            t0 = time.monotonic()
            try:
                _, c = call.with_call(b"", timeout=deadline_s)
                replica = dict(c.initial_metadata()).get("x-replica", "(none)")
                record(t0, replica, grpc.StatusCode.OK, None)
            except grpc.RpcError as e:
                record(t0, "(none)", e.code(), e.details())

    def open_loop():
        interval = 1.0 / opts["rate"]
        pending = []
        n = 0
        while not stop.is_set():
            due = start + n * interval
            now = time.monotonic()
            if due > now:
                stop.wait(due - now)
                continue
            t0 = time.monotonic()
            f = calls[n % len(calls)].future(b"", timeout=deadline_s)

            def done(f, t0=t0):
                try:
                    f.result()
                    replica = dict(f.initial_metadata()).get("x-replica", "(none)")
                    record(t0, replica, grpc.StatusCode.OK, None)
                except grpc.RpcError as e:
                    record(t0, "(none)", e.code(), e.details())

            f.add_done_callback(done)
            pending.append(f)
            n += 1
        for f in pending:
            try:
                f.result()
            except grpc.RpcError:
                pass

    if opts.get("rate", 0) > 0:
        threads = [threading.Thread(target=open_loop)]
    else:
        threads = [threading.Thread(target=caller, args=(i,)) for i in range(max(1, opts.get("callers", 8)))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for ch in channels:
        ch.close()
    sys.stdout.write(json.dumps(out) + "\n")


if __name__ == "__main__":
    main()
