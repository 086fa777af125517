package cluster

import (
	"context"
	"time"
)

type contextT = context.Context

func contextWithTimeout(d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), d)
}
