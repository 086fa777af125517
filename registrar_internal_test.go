package grpcmgmt

import (
	"context"
	"testing"

	"google.golang.org/grpc"
)

// sameInterceptor tells the Manager's own interceptor (one func value,
// copied) from any other: another closure of the same code, another
// callPath's method value, and a different function.
func TestSameInterceptor(t *testing.T) {
	a, b := &callPath{}, &callPath{}
	a.unaryFn, b.unaryFn = a.unary, b.unary
	closure := func(n int) grpc.UnaryServerInterceptor {
		return func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			if n < 0 {
				return nil, nil
			}
			return h(ctx, req)
		}
	}
	c1, c2 := closure(1), closure(2)
	copied := a.unaryFn
	for _, tc := range []struct {
		name string
		x, y grpc.UnaryServerInterceptor
		want bool
	}{
		{"the same value", a.unaryFn, a.unaryFn, true},
		{"a copy", copied, a.unaryFn, true},
		{"another callPath's", b.unaryFn, a.unaryFn, false},
		{"a method value made again", a.unary, a.unaryFn, false},
		{"two closures of one code", c1, c2, false},
		{"a closure and itself", c1, c1, true},
		{"another function", c1, a.unaryFn, false},
	} {
		if got := sameInterceptor(tc.x, tc.y); got != tc.want {
			t.Errorf("%s: sameInterceptor = %v, want %v", tc.name, got, tc.want)
		}
	}
}
