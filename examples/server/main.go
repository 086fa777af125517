// Command server is one replica of a gRPC service that uses grpcmgmt: the
// test service of grpc-go's interop suite (grpc.testing.TestService) with a
// real, explicit capacity, every response naming the replica in the
// "x-replica" header.
//
//	go run ./examples/server -listen 127.0.0.2:50051 -name r1
//
// It shuts down in lame-duck fashion on SIGTERM or SIGINT (health
// NOT_SERVING, wait for clients to notice, drain, stop), as a Kubernetes pod
// should. SIGUSR1 doubles the CPU each call burns (-work), and the next one
// restores it (a replica whose service time drifts; make scenarios uses it). With -metrics-listen it serves the library's OpenTelemetry metrics
// in the Prometheus format on /metrics.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"google.golang.org/grpc"

	"github.com/grpcmgmt/grpcmgmt"
	"github.com/grpcmgmt/grpcmgmt/internal/replica"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "server:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("server", flag.ContinueOnError)
	var (
		listen        = fs.String("listen", "127.0.0.1:50051", "address to serve gRPC on")
		name          = fs.String("name", hostname(), "replica name, sent in the x-replica response header")
		capacity      = replica.Flags(fs)
		metricsListen = fs.String("metrics-listen", "", "address to serve Prometheus /metrics on (empty: off)")
		shutdownAfter = fs.Duration("shutdown-timeout", 60*time.Second, "how long a shutdown may take before calls are cut")
		logLevel      = fs.String("log-level", "info", "debug, info, warn or error")
	)
	var features []func() ([]grpcmgmt.Option, error)
	for _, register := range featureFlags {
		features = append(features, register(fs))
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return fmt.Errorf("-log-level: %w", err)
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level})).With("replica", *name)

	opts := []grpcmgmt.Option{grpcmgmt.WithLogger(logger)}
	for _, f := range features {
		o, err := f()
		if err != nil {
			return err
		}
		opts = append(opts, o...)
	}
	if *metricsListen != "" {
		exporter, err := otelprom.New()
		if err != nil {
			return err
		}
		mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(exporter))
		defer mp.Shutdown(context.Background())
		opts = append(opts, grpcmgmt.WithMeterProvider(mp))
		mux := http.NewServeMux()
		mux.Handle("/metrics", promhttp.Handler())
		hs := &http.Server{Addr: *metricsListen, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
		go func() {
			if err := hs.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
				logger.Error("metrics server", "err", err)
			}
		}()
		defer hs.Close()
	}

	m, err := grpcmgmt.New(opts...)
	if err != nil {
		return err
	}
	rcfg, err := capacity(*name)
	if err != nil {
		_ = m.Shutdown(context.Background())
		return err
	}
	srv := grpc.NewServer(m.ServerOptions()...)
	svc := replica.New(rcfg)
	svc.Register(srv)
	defer replica.DriftOnSignal(svc)()
	if err := m.Register(srv); err != nil {
		return err
	}
	lis, err := net.Listen("tcp", *listen)
	if err != nil {
		_ = m.Shutdown(context.Background())
		return err
	}
	logger.Info("serving", "addr", lis.Addr().String())

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(lis) }()
	select {
	case err := <-serveErr:
		_ = m.Shutdown(context.Background())
		return err
	case <-ctx.Done():
	}
	logger.Info("signal received, shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), *shutdownAfter)
	defer cancel()
	err = m.Shutdown(sctx)
	<-serveErr
	return err
}

// featureFlags register each lever's flags; each returns a function that
// turns the parsed flags into options. One file per lever (flags_*.go).
var featureFlags []func(fs *flag.FlagSet) func() ([]grpcmgmt.Option, error)

func hostname() string {
	h, err := os.Hostname()
	if err != nil {
		return "replica"
	}
	return h
}
