package health

import (
	"context"
	"strconv"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
)

// service is the grpc.health.v1.Health service Register registers.
//
// Check and List are the health.Server's own, so a Check caller (a
// Kubernetes probe, grpc_health_probe) sees the binary status the Reporter
// publishes there, with grpc-go's semantics. Watch of a service that
// follows load is answered per stream: a replica out of rotation for load
// turns only a share of its Watch streams NOT_SERVING (streamSet); every
// other Watch is the health.Server's. A Check of GuardService answers the
// replica's place in rotation, for the guards of its peers.
type service struct {
	healthpb.UnimplementedHealthServer
	r *Reporter
}

func (s service) Check(ctx context.Context, in *healthpb.HealthCheckRequest) (*healthpb.HealthCheckResponse, error) {
	s.r.asked.Store(true)
	if in.GetService() == GuardService {
		md := s.r.instanceMD
		if lat := s.r.ownLatency.Load(); lat > 0 {
			md = metadata.Join(md, metadata.Pairs(LatencyHeader, strconv.FormatInt(lat/int64(time.Microsecond), 10)))
		}
		_ = grpc.SetHeader(ctx, md)
		return &healthpb.HealthCheckResponse{Status: s.r.guardStatus()}, nil
	}
	return s.r.hs.Check(ctx, in)
}

func (s service) List(ctx context.Context, in *healthpb.HealthListRequest) (*healthpb.HealthListResponse, error) {
	s.r.asked.Store(true)
	return s.r.hs.List(ctx, in)
}

func (s service) Watch(in *healthpb.HealthCheckRequest, stream healthpb.Health_WatchServer) error {
	s.r.asked.Store(true)
	name := in.GetService()
	if !s.r.follows[name] {
		return s.r.hs.Watch(in, stream)
	}
	addr := ""
	if p, ok := peer.FromContext(stream.Context()); ok && p.Addr != nil {
		addr = p.Addr.String()
	}
	ws := s.r.addStream(name, addr)
	defer s.r.removeStream(name, ws)
	var last Status = -1
	for {
		if st := s.r.streamStatus(name, ws); st != last {
			last = st
			if err := stream.Send(&healthpb.HealthCheckResponse{Status: st}); err != nil {
				return status.Error(codes.Canceled, "Stream has ended.")
			}
		}
		select {
		case <-ws.notify:
		case <-stream.Context().Done():
			return status.Error(codes.Canceled, "Stream has ended.")
		}
	}
}

// instanceMD is the header of a GuardService Check.
func instanceMD(id string) metadata.MD { return metadata.Pairs(InstanceHeader, id) }
