package grpcmgmt

import (
	"context"
	"unsafe"

	"google.golang.org/grpc"
)

// Registrar returns a grpc.ServiceRegistrar that registers services on r
// with the levers' unary work in their method handlers, where grpc-go's
// generated code can skip its interceptor machinery. Use it in place of
// the server in the generated Register functions:
//
//	pb.RegisterGreeterServer(m.Registrar(srv), impl)
//
// Why: for every unary call on a server with an interceptor, grpc-go's
// generated handler allocates the interceptor's info and a closure for the
// handler (two allocations, ≈ 0.5 % of a small call's CPU in the overhead
// benchmark's profiles; the Registrar form measured 1.3 % less CPU a call
// than the interceptor form there, part of it because grpc-go's stack
// growth then happened one frame shallower: bench/NOTES.md). A method registered through the Registrar does the work
// of the Manager's interceptor itself (shed or admit, count and time, the
// per-call ORCA report: the same decisions, metrics and order as
// ServerOptions documents) and calls the generated handler with no
// interceptor, so neither is allocated. A shed call is refused before its
// request is decoded.
//
// ServerOptions is still required: it installs the credentials, keepalive,
// tap and stream levers, and its interceptor serves every method not
// registered through a Registrar (the Manager's own health and ORCA
// services, grpc-go's reflection). A wrapped method does the work itself
// only when the server's unary interceptor is exactly the Manager's (or
// the server has none); with interceptors of your own chained after the
// Manager's (or grpc-go's per-call ORCA interceptor, which
// orca.Config.HandlerMetrics installs), it leaves the call to the
// interceptor chain as usual, so the work is done exactly once and every
// interceptor runs. Streaming methods are registered unchanged (the stream
// interceptor serves them).
//
// A nil r gives a Registrar whose RegisterService registers nothing and
// logs an error at Error level. A Registrar of m given to Registrar again
// is returned as it is, so no method does the work twice.
func (m *Manager) Registrar(r grpc.ServiceRegistrar) grpc.ServiceRegistrar {
	if g, ok := r.(*registrar); ok && g.m == m {
		return g
	}
	return &registrar{r: r, m: m}
}

// registrar is the grpc.ServiceRegistrar that Manager.Registrar returns.
type registrar struct {
	r grpc.ServiceRegistrar
	m *Manager
}

// RegisterService registers a copy of sd on the underlying registrar,
// with each unary method's handler wrapped (Manager.Registrar).
func (g *registrar) RegisterService(sd *grpc.ServiceDesc, impl any) {
	if g.r == nil || sd == nil {
		g.m.log.Error("Registrar: RegisterService: nothing registered: the registrar or the service description is nil",
			"nil_registrar", g.r == nil, "nil_desc", sd == nil)
		return
	}
	d := *sd
	d.Methods = make([]grpc.MethodDesc, len(sd.Methods))
	for i, md := range sd.Methods {
		d.Methods[i] = grpc.MethodDesc{
			MethodName: md.MethodName,
			Handler:    g.m.path.method("/"+sd.ServiceName+"/"+md.MethodName, md.Handler),
		}
	}
	g.r.RegisterService(&d, impl)
}

// method wraps the generated handler h of the unary method fullMethod
// (Manager.Registrar).
func (c *callPath) method(fullMethod string, h grpc.MethodHandler) grpc.MethodHandler {
	return func(srv any, ctx context.Context, dec func(any) error, ui grpc.UnaryServerInterceptor) (any, error) {
		if ui != nil && !sameInterceptor(ui, c.unaryFn) {
			// Interceptors of the user's own: the chain, with the Manager's
			// first, does the work.
			return h(srv, ctx, dec, ui)
		}
		return runUnary(c, ctx, fullMethod, registered{srv: srv, dec: dec, h: h}, registered.run)
	}
}

// registered is a Registrar method's call: the generated handler, called
// without an interceptor, with its service and request decoder.
type registered struct {
	srv any
	dec func(any) error
	h   grpc.MethodHandler
}

func (k registered) run(ctx context.Context) (any, error) { return k.h(k.srv, ctx, k.dec, nil) }

// sameInterceptor reports whether a and b are the same func value: the
// same closure, not merely the same code. A func value is one pointer to
// its closure, and grpc-go installs a single chained interceptor as it is
// given, so a Registrar's handler recognises the Manager's own.
func sameInterceptor(a, b grpc.UnaryServerInterceptor) bool {
	return *(*unsafe.Pointer)(unsafe.Pointer(&a)) == *(*unsafe.Pointer)(unsafe.Pointer(&b))
}
