package orca

import (
	"context"
	"fmt"
	"time"

	v3orcapb "github.com/cncf/xds/go/xds/data/orca/v3"
	v3orcaservicegrpc "github.com/cncf/xds/go/xds/service/orca/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	grpcorca "google.golang.org/grpc/orca"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
)

// serviceName is the out-of-band service's full name.
const serviceName = "xds.service.orca.v3.OpenRcaService"

// Register registers the out-of-band reporting service
// (xds.service.orca.v3.OpenRcaService) on s, fed by r. It does nothing when
// Config.DisableOutOfBand is set, and returns an error (instead of grpc-go's
// fatal log) when s already serves the service, and ErrClosed after Close.
func (r *Reporter) Register(s grpc.ServiceRegistrar) error {
	if s == nil {
		return fmt.Errorf("orca: Register: registrar must not be nil")
	}
	if r.closed.Err() != nil {
		return ErrClosed
	}
	if r.cfg.DisableOutOfBand {
		return nil
	}
	if si, ok := s.(interface {
		GetServiceInfo() map[string]grpc.ServiceInfo
	}); ok {
		if _, dup := si.GetServiceInfo()[serviceName]; dup {
			return fmt.Errorf("orca: Register: %s is already registered on this server", serviceName)
		}
	}
	v3orcaservicegrpc.RegisterOpenRcaServiceServer(s, &oobService{r: r})
	return nil
}

// oobService serves the out-of-band reports. With a minimum interval of
// 30 s or more it hands each stream to grpc-go's orca.Service. grpc-go
// raises any shorter minimum to 30 s (only its own tests can lower it), so
// for a shorter Config.MinReportingInterval the same loop runs here: send
// the current report, wait max(requested interval, minimum), repeat.
type oobService struct {
	v3orcaservicegrpc.UnimplementedOpenRcaServiceServer
	r *Reporter
}

func (o *oobService) StreamCoreMetrics(req *v3orcaservicegrpc.OrcaLoadReportRequest, stream v3orcaservicegrpc.OpenRcaService_StreamCoreMetricsServer) error {
	r := o.r
	ctx, cancel := context.WithCancel(stream.Context())
	defer cancel()
	stop := context.AfterFunc(r.closed, cancel) // Close ends the stream
	defer stop()

	interval := r.cfg.MinReportingInterval
	if d := req.GetReportInterval().AsDuration(); req.GetReportInterval() != nil && d > interval {
		interval = d
	}
	r.oobStreams.Add(ctx, 1)
	defer r.oobStreams.Add(context.Background(), -1)
	addr := ""
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		addr = p.Addr.String()
	}
	r.log.Debug("orca: out-of-band stream opened", "peer", addr, "interval", interval)
	ws := &countingStream{OpenRcaService_StreamCoreMetricsServer: stream, ctx: ctx, r: r}

	var err error
	if r.grpcSvc != nil {
		err = r.grpcSvc.StreamCoreMetrics(req, ws)
	} else {
		err = o.loop(ctx, interval, ws)
	}
	if r.closed.Err() != nil {
		err = status.Error(codes.Unavailable, "orca: reporter closed")
	}
	r.log.Debug("orca: out-of-band stream ended", "peer", addr, "err", err)
	return err
}

func (o *oobService) loop(ctx context.Context, interval time.Duration, s *countingStream) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if err := s.Send(loadReport(o.r.ServerMetrics())); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return status.FromContextError(ctx.Err()).Err()
		case <-t.C:
		}
	}
}

// countingStream counts the reports sent and gives the stream a context
// that Close cancels.
type countingStream struct {
	v3orcaservicegrpc.OpenRcaService_StreamCoreMetricsServer
	ctx context.Context
	r   *Reporter
}

func (s *countingStream) Context() context.Context { return s.ctx }

func (s *countingStream) Send(m *v3orcapb.OrcaLoadReport) error {
	if err := s.OpenRcaService_StreamCoreMetricsServer.Send(m); err != nil {
		return err
	}
	s.r.oobReports.Add(s.ctx, 1)
	return nil
}

// loadReport converts sm the way grpc-go does for its own service (unset
// fields, -1, are left out).
func loadReport(sm *grpcorca.ServerMetrics) *v3orcapb.OrcaLoadReport {
	ret := &v3orcapb.OrcaLoadReport{
		Utilization:  sm.Utilization,
		RequestCost:  sm.RequestCost,
		NamedMetrics: sm.NamedMetrics,
	}
	if sm.CPUUtilization != -1 {
		ret.CpuUtilization = sm.CPUUtilization
	}
	if sm.MemUtilization != -1 {
		ret.MemUtilization = sm.MemUtilization
	}
	if sm.AppUtilization != -1 {
		ret.ApplicationUtilization = sm.AppUtilization
	}
	if sm.QPS != -1 {
		ret.RpsFractional = sm.QPS
	}
	if sm.EPS != -1 {
		ret.Eps = sm.EPS
	}
	return ret
}
