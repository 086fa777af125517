// Package outcome classifies how a call ended, for the load sampler's
// error rate (load.Snapshot.EPS), in one place for the grpcmgmt Manager's
// interceptor and the loadshed package's.
package outcome

import (
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// ServerError reports whether err counts towards EPS: failures that point
// at the server (or at its load), not at the caller's request.
func ServerError(err error) bool {
	if err == nil {
		return false
	}
	switch status.Code(err) {
	case codes.Unknown, codes.DeadlineExceeded, codes.ResourceExhausted,
		codes.Internal, codes.Unavailable, codes.DataLoss:
		return true
	}
	return false
}
