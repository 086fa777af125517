// A standard grpc-java client (Debian libgrpc-java 1.41, Netty) for grpcmgmt's
// tests. CALLERS threads make unary grpc.testing.TestService/UnaryCall calls
// (an empty message is a valid SimpleRequest, so a raw byte marshaller needs
// no generated code) over CHANNELS channels for DURATION_MS, each with a
// deadline, and report which replica served each call (the x-replica
// response header).
//
//   java -cp CLASSPATH LoadClient '<json options>'
//
// options: {"target", "serviceConfig", "callers", "channels", "durationMs",
// "deadlineMs"}; durationMs 0 runs until stdin closes. Prints one JSON line,
// the shape the Go harness reads from every external client:
//
//   {"calls": n, "failed": n, "errors": [...], "byStatus": {"UNAVAILABLE": n},
//    "startUnixMs": t0, "records": [[ms_since_t0_at_end, replica, status_code, latency_us], ...]}

import com.google.gson.Gson;
import io.grpc.CallOptions;
import io.grpc.ClientCall;
import io.grpc.ManagedChannel;
import io.grpc.ManagedChannelBuilder;
import io.grpc.Metadata;
import io.grpc.MethodDescriptor;
import io.grpc.Status;
import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;

public final class LoadClient {
  static final Metadata.Key<String> REPLICA = Metadata.Key.of("x-replica", Metadata.ASCII_STRING_MARSHALLER);

  static final MethodDescriptor.Marshaller<byte[]> RAW = new MethodDescriptor.Marshaller<byte[]>() {
    @Override public InputStream stream(byte[] value) { return new ByteArrayInputStream(value); }
    @Override public byte[] parse(InputStream in) {
      try { return in.readAllBytes(); } catch (IOException e) { throw new RuntimeException(e); }
    }
  };

  static final MethodDescriptor<byte[], byte[]> UNARY_CALL = MethodDescriptor.<byte[], byte[]>newBuilder()
      .setType(MethodDescriptor.MethodType.UNARY)
      .setFullMethodName("grpc.testing.TestService/UnaryCall")
      .setRequestMarshaller(RAW).setResponseMarshaller(RAW)
      .build();

  @SuppressWarnings("unchecked")
  static ManagedChannel newChannel(String target, String serviceConfigJson) {
    // [START channel] (docs/clients.md, Java: checked by a test)
    Map<String, ?> serviceConfig = new Gson().fromJson(serviceConfigJson, Map.class);
    ManagedChannel channel = ManagedChannelBuilder
        .forTarget(target)
        .defaultServiceConfig(serviceConfig)
        .enableRetry()
        .usePlaintext()
        .build();
    // [END channel]
    return channel;
  }

  /** One call's outcome. */
  static final class Result {
    String replica = "(none)";
    Status status;
  }

  static Result call(ManagedChannel ch, long deadlineMs) {
    Result r = new Result();
    CompletableFuture<Void> done = new CompletableFuture<>();
    ClientCall<byte[], byte[]> c = ch.newCall(UNARY_CALL, CallOptions.DEFAULT.withDeadlineAfter(deadlineMs, TimeUnit.MILLISECONDS));
    c.start(new ClientCall.Listener<byte[]>() {
      @Override public void onHeaders(Metadata headers) {
        String v = headers.get(REPLICA);
        if (v != null) r.replica = v;
      }
      @Override public void onClose(Status status, Metadata trailers) {
        r.status = status;
        done.complete(null);
      }
    }, new Metadata());
    c.request(1);
    c.sendMessage(new byte[0]);
    c.halfClose();
    done.join();
    return r;
  }

  public static void main(String[] args) throws Exception {
    Map<String, Object> opts = new Gson().fromJson(args[0], Map.class);
    String target = (String) opts.get("target");
    String serviceConfig = (String) opts.getOrDefault("serviceConfig", "{}");
    int callers = ((Number) opts.getOrDefault("callers", 8.0)).intValue();
    int nch = Math.max(1, ((Number) opts.getOrDefault("channels", 1.0)).intValue());
    long durationMs = ((Number) opts.getOrDefault("durationMs", 5000.0)).longValue();
    long deadlineMs = ((Number) opts.getOrDefault("deadlineMs", 10000.0)).longValue();

    List<ManagedChannel> channels = new ArrayList<>();
    for (int i = 0; i < nch; i++) channels.add(newChannel(target, serviceConfig));
    java.util.concurrent.CountDownLatch stop = new java.util.concurrent.CountDownLatch(1);
    if (durationMs > 0) {
      new java.util.Timer(true).schedule(new java.util.TimerTask() {
        @Override public void run() { stop.countDown(); }
      }, durationMs);
    } else {
      Thread t = new Thread(() -> {
        try { System.in.readAllBytes(); } catch (IOException e) { /* stdin gone: stop too */ }
        stop.countDown();
      });
      t.setDaemon(true);
      t.start();
    }
    long startUnixMs = System.currentTimeMillis();
    long start = System.nanoTime();
    List<Object[]> records = new ArrayList<>();
    Map<String, Integer> byStatus = new LinkedHashMap<>();
    List<String> errors = new ArrayList<>();
    int[] failed = {0};
    List<Thread> threads = new ArrayList<>();
    for (int i = 0; i < callers; i++) {
      ManagedChannel ch = channels.get(i % nch);
      Thread t = new Thread(() -> {
        while (stop.getCount() > 0) {
          long t0 = System.nanoTime();
          Result r = call(ch, deadlineMs);
          long t1 = System.nanoTime();
          synchronized (records) {
            records.add(new Object[] {(t1 - start) / 1_000_000L, r.replica, r.status.getCode().value(), (t1 - t0) / 1000L});
            if (!r.status.isOk()) {
              failed[0]++;
              byStatus.merge(r.status.getCode().name(), 1, Integer::sum);
              if (errors.size() < 5) errors.add(r.status.getCode() + " " + r.status.getDescription());
            }
          }
        }
      });
      t.start();
      threads.add(t);
    }
    for (Thread t : threads) t.join();
    for (ManagedChannel ch : channels) {
      ch.shutdown();
      ch.awaitTermination(5, TimeUnit.SECONDS);
    }
    Map<String, Object> out = new LinkedHashMap<>();
    out.put("calls", records.size());
    out.put("failed", failed[0]);
    out.put("errors", errors);
    out.put("byStatus", byStatus);
    out.put("startUnixMs", startUnixMs);
    out.put("records", records);
    System.out.println(new Gson().toJson(out));
  }
}
