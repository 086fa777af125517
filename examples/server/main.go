// Command server is one replica of a gRPC service that uses grpcmgmt: the
// test service of grpc-go's interop suite (grpc.testing.TestService) with a
// real, explicit capacity, every response naming the replica in the
// "x-replica" header.
//
//	go -C examples run ./server -listen 127.0.0.2:50051 -name r1
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
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

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
		metricsListen = fs.String("metrics-listen", "", "address to serve Prometheus /metrics on, e.g. 127.0.0.1:9090 "+
			"(empty: off; an address on every interface, such as :9090, exposes the metrics to every network the host is on)")
		shutdownAfter = fs.Duration("shutdown-timeout", 60*time.Second, "how long a shutdown may take before calls are cut")
		logLevel      = fs.String("log-level", "info", "debug, info, warn or error")
		ignoreDrain   = fs.Bool("ignore-drain", false, "StreamingOutputCall ignores the drain signal (goaway.Draining): its streams are cut at the end of the grace instead of ending cleanly")
		tlsCert       = fs.String("tls-cert", "", "PEM certificate to serve TLS with (with -tls-key; empty: plaintext)")
		tlsKey        = fs.String("tls-key", "", "PEM private key of -tls-cert")
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
	if err := checkFlags(*listen, *name, *metricsListen, *shutdownAfter); err != nil {
		return err
	}
	rcfg, err := capacity(*name)
	if err != nil {
		return err
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level})).With("replica", *name)

	opts := []grpcmgmt.Option{grpcmgmt.WithLogger(logger)}
	switch {
	case *tlsCert != "" && *tlsKey != "":
		creds, err := credentials.NewServerTLSFromFile(*tlsCert, *tlsKey)
		if err != nil {
			return fmt.Errorf("-tls-cert/-tls-key: %w", err)
		}
		opts = append(opts, grpcmgmt.WithCredentials(creds))
	case *tlsCert != "" || *tlsKey != "":
		return errors.New("-tls-cert and -tls-key go together")
	default:
		logger.Info("serving plaintext (no -tls-cert)")
		opts = append(opts, grpcmgmt.WithInsecure())
	}
	for _, f := range features {
		o, err := f()
		if err != nil {
			return err
		}
		opts = append(opts, o...)
	}
	if *metricsListen != "" {
		// Listen first: a metrics address that cannot be served is a
		// start-up error, not a log line next to a server that runs blind.
		mlis, err := net.Listen("tcp", *metricsListen)
		if err != nil {
			return fmt.Errorf("-metrics-listen: %w", err)
		}
		if host, _, _ := net.SplitHostPort(*metricsListen); host == "" || net.ParseIP(host).IsUnspecified() {
			logger.Warn("metrics are served on every interface: anyone who can reach this host can read them",
				"addr", mlis.Addr().String())
		}
		exporter, err := otelprom.New()
		if err != nil {
			_ = mlis.Close()
			return err
		}
		mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(exporter))
		defer mp.Shutdown(context.Background())
		opts = append(opts, grpcmgmt.WithMeterProvider(mp))
		mux := http.NewServeMux()
		mux.Handle("/metrics", promhttp.Handler())
		hs := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
		served := make(chan struct{})
		go func() {
			defer close(served)
			if err := hs.Serve(mlis); err != nil && !errors.Is(err, http.ErrServerClosed) {
				logger.Error("metrics server", "err", err)
			}
		}()
		defer func() { _ = hs.Close(); <-served }()
		logger.Info("serving metrics", "addr", mlis.Addr().String())
	}

	m, err := grpcmgmt.New(opts...)
	if err != nil {
		return err
	}
	srv := grpc.NewServer(m.ServerOptions()...)
	rcfg.IgnoreDrain, rcfg.SpreadDrain = *ignoreDrain, true
	svc := replica.New(rcfg)
	svc.Register(m.Registrar(srv)) // the levers' unary work in the handlers: no interceptor allocations
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

// checkFlags validates the flags that are not a lever's, naming the flag
// and its allowed range.
func checkFlags(listen, name string, metricsListen string, shutdownAfter time.Duration) error {
	if _, _, err := net.SplitHostPort(listen); err != nil {
		return fmt.Errorf("-listen must be host:port (host may be empty for every interface), got %q", listen)
	}
	if name == "" {
		return errors.New("-name must not be empty: it names the replica in every response")
	}
	if metricsListen != "" {
		if _, _, err := net.SplitHostPort(metricsListen); err != nil {
			return fmt.Errorf("-metrics-listen must be host:port, such as 127.0.0.1:9090 (empty: off), got %q", metricsListen)
		}
	}
	if shutdownAfter < time.Second || shutdownAfter > time.Hour {
		return fmt.Errorf("-shutdown-timeout must be within 1s..1h, got %v", shutdownAfter)
	}
	return nil
}

// flagError names the flag behind a lever's validation error: flags maps
// the configuration field an error names ("PolicyConfig.Fraction") to the
// flag that sets it.
func flagError(err error, flags map[string]string) error {
	if err == nil {
		return nil
	}
	for field, flag := range flags {
		if strings.Contains(err.Error(), field+" must") {
			return fmt.Errorf("-%s: %w", flag, err)
		}
	}
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
