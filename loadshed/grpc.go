package loadshed

import (
	"context"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/tap"

	"github.com/grpcmgmt/grpcmgmt/internal/outcome"
	"github.com/grpcmgmt/grpcmgmt/load"
)

// TapHandle returns the handle to install with grpc.InTapHandle (or through
// the Manager, which composes it with other levers' taps).
//
// The tap reads the call's priority header (Config.PriorityHeader) where
// the headers are a plain map, and passes a valid priority on to the
// interceptors in the context: so installed, a call without the header
// costs the interceptors one atomic load rather than a search of the
// incoming metadata (metadata.ValueFromIncomingContext walks the context
// and compares every header case-insensitively when the key is absent:
// about 100 ns a call, measured). grpc-go allocates one tap.Info per call
// for any tap handle; a Shedder whose TapHandle is never called searches
// the metadata in its interceptors instead. Call TapHandle only if you
// install the handle: once it is called, the interceptors take the
// priority and (with Pushback Off) the CPU limit's decision from the tap.
//
// grpc-go answers a tap rejection itself, with a Trailers-Only response that
// carries only grpc-status and grpc-message: no trailer of ours, so no
// grpc-retry-pushback-ms. So with a pushback configured (the default) the
// handle admits every call and the interceptors decide; with Pushback Off it
// rejects calls over a limit before their request is read, and is the one
// place the CPU limit is decided.
//
// The tap never takes a slot: a call it lets through may still never reach
// an interceptor (unknown method, deadline already past, client reset), and
// a slot taken there could never be released. Slots are taken by the
// interceptors, which re-check the limits atomically.
func (s *Shedder) TapHandle() tap.ServerInHandle {
	if s.header != "" {
		s.flags.Or(flagTapReadsHeader)
	}
	if !s.tapMode {
		if s.header == "" {
			return func(ctx context.Context, _ *tap.Info) (context.Context, error) { return ctx, nil }
		}
		return s.priorityTap
	}
	s.flags.Or(flagTapRollsCPU)
	return s.tap
}

// priorityKey is the context key under which the tap passes a call's
// priority (from its header) to the interceptors.
type priorityKey struct{}

// headerPriority parses the priority header of info, and returns ctx with
// the priority for the interceptors when it is present and valid (the
// only case that allocates: the context).
func (s *Shedder) headerPriority(ctx context.Context, info *tap.Info) (context.Context, Priority, bool) {
	v := info.Header[s.header]
	if len(v) == 0 {
		return ctx, 0, false
	}
	p, ok := ParsePriority(v[0])
	if !ok {
		return ctx, 0, false
	}
	if s.flags.Load()&flagSawHeader == 0 {
		s.flags.Or(flagSawHeader)
	}
	return context.WithValue(ctx, priorityKey{}, p), p, true
}

func (s *Shedder) priorityTap(ctx context.Context, info *tap.Info) (context.Context, error) {
	ctx, _, _ = s.headerPriority(ctx, info)
	return ctx, nil
}

func (s *Shedder) tap(ctx context.Context, info *tap.Info) (context.Context, error) {
	if s.isExempt(info.FullMethodName) {
		return ctx, nil
	}
	var p Priority
	if s.header != "" {
		var ok bool
		if ctx, p, ok = s.headerPriority(ctx, info); !ok {
			p = s.priorityOf(info.FullMethodName, nil)
		}
	} else {
		p = s.priorityOf(info.FullMethodName, nil)
	}
	if s.load != nil && s.cpuShed(p) {
		return ctx, s.rejected(reasonCPU, p, info.FullMethodName)
	}
	if r := s.wouldShed(p); r != admitted {
		return ctx, s.rejected(r, p, info.FullMethodName)
	}
	return ctx, nil
}

// UnaryServerInterceptor returns the interceptor that admits or sheds unary
// calls. Add it with grpc.ChainUnaryInterceptor, before interceptors that
// send headers. A shed call's handler never runs; an admitted call's slot is
// released when the rest of the chain returns, also if it panics.
func (s *Shedder) UnaryServerInterceptor() grpc.UnaryServerInterceptor { return s.unary }

// StreamServerInterceptor returns the interceptor that admits or sheds
// streams when they start. A stream that has started is never shed; it holds
// its slot until its handler returns (it is not a latency sample for the
// adaptive limit).
func (s *Shedder) StreamServerInterceptor() grpc.StreamServerInterceptor { return s.stream }

func (s *Shedder) unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (resp any, err error) {
	t, err := s.AdmitUnary(ctx, info.FullMethod)
	if err != nil {
		return nil, err
	}
	defer func() { t.Finish(outcome.ServerError(err)) }() // the outcome counts with SharedCount only
	return h(ctx, req)
}

func (s *Shedder) stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
	t, err := s.AdmitStream(ss.Context(), info.FullMethod)
	if err != nil {
		return err
	}
	defer t.Done()
	return h(srv, ss)
}

// Ticket is an admitted call's slot, returned by AdmitUnary and
// AdmitStream: a value, so admitting allocates nothing. Call Done (or
// Finish) exactly once when the call ends, typically deferred (so that a
// panicking handler does not leak its slot). An exempt method's Ticket
// holds no slot (with Config.SharedCount its Done still ends the call's
// count in the sampler); the zero Ticket's Done does nothing.
type Ticket struct {
	s *Shedder
	t token
	// exempt: with Config.SharedCount, the sampler's counter, in which an
	// exempt unary call is counted as untimed until Finish.
	exempt *load.Calls
}

// Done releases the call's slot: Finish(false).
func (t Ticket) Done() { t.Finish(false) }

// Finish releases the call's slot, as Done does. With Config.SharedCount
// it also ends the call in the load sampler's counter, where failed counts
// it towards the error rate (load.Snapshot.EPS; the grpcmgmt Manager
// passes whether the call ended with a server-side error code).
func (t Ticket) Finish(failed bool) {
	switch {
	case t.s != nil:
		t.s.done(t.t, failed)
	case t.exempt != nil:
		t.exempt.End(failed)
	}
}

// AdmitUnary decides on the unary call of fullMethod whose context is ctx,
// as the unary interceptor does: it returns the call's Ticket, or, for a
// call it sheds, the status error to return (and, with a pushback
// configured, it has set the grpc-retry-pushback-ms trailer). Exempt
// methods get the zero Ticket. It is the interceptor's body, for code that
// composes its own interceptor (the grpcmgmt Manager installs one
// interceptor for every lever): call it before any header is sent, and call
// the Ticket's Done when the call ends (Finish, with the call's outcome,
// under Config.SharedCount).
func (s *Shedder) AdmitUnary(ctx context.Context, fullMethod string) (Ticket, error) {
	return s.admitCall(ctx, fullMethod, true)
}

// AdmitStream is AdmitUnary for a stream (ctx is the stream's context): a
// stream that has started is never shed, and holds its slot until Done (it
// is not a latency sample for the adaptive limit).
func (s *Shedder) AdmitStream(ctx context.Context, fullMethod string) (Ticket, error) {
	return s.admitCall(ctx, fullMethod, false)
}

func (s *Shedder) admitCall(ctx context.Context, method string, unary bool) (tk Ticket, err error) {
	if s.isExempt(method) {
		if s.calls != nil && unary {
			s.calls.Begin() // counted, untimed, holding no slot (SharedCount)
			return Ticket{exempt: s.calls}, nil
		}
		return Ticket{}, nil
	}
	p := s.callPriority(ctx, method)
	if r := s.admitInto(&tk.t, p, unary, s.flags.Load()&flagTapRollsCPU == 0); r != admitted {
		if md := s.pushbackTrailer(); md != nil {
			_ = grpc.SetTrailer(ctx, md)
		}
		return Ticket{}, s.rejected(r, p, method)
	}
	tk.s = s
	return tk, nil
}

func (s *Shedder) isExempt(method string) bool {
	svc := serviceOf(method)
	if s.exemptMask&(lengthBit(method)|lengthBit(svc)) == 0 {
		return false // no exempt entry is as long as either
	}
	if s.exempt == nil {
		// A few entries: comparing strings (mostly their lengths) is cheaper
		// than hashing the method twice.
		for _, e := range s.exemptList {
			if e == method || e == svc {
				return true
			}
		}
		return false
	}
	return s.exempt[method] || s.exempt[svc]
}

// lengthBit returns the bit of Shedder.exemptMask for a string of v's
// length.
func lengthBit(v string) uint32 { return 1 << (len(v) % 32) }

// The bits of Shedder.flags.
const (
	// flagTapRollsCPU: TapHandle was called in tap mode; the tap rolls the
	// CPU dice, so the interceptors must not roll them again.
	flagTapRollsCPU = 1 << iota
	// flagTapReadsHeader: TapHandle was called with a priority header
	// configured; the tap reads the header and passes the priority in the
	// context.
	flagTapReadsHeader
	// flagSawHeader: the tap has seen a valid priority header; until then
	// the interceptors do not look in the context.
	flagSawHeader
)

// priorityOf returns a call's priority: a valid header, else its method's
// or its service's entry in Config.Methods, else the default.
func (s *Shedder) priorityOf(method string, header []string) Priority {
	if len(header) > 0 {
		if p, ok := ParsePriority(header[0]); ok {
			return p
		}
	}
	if s.hasMethods {
		if p, ok := s.methods[method]; ok {
			return p
		}
		if p, ok := s.methods[serviceOf(method)]; ok {
			return p
		}
	}
	return s.defPrio
}

// callPriority returns the priority of the call of ctx: from the tap when
// TapHandle is installed (one atomic load while no call has carried a
// valid header), else from the incoming metadata.
func (s *Shedder) callPriority(ctx context.Context, method string) Priority {
	if s.header == "" {
		return s.priorityOf(method, nil)
	}
	if f := s.flags.Load(); f&flagTapReadsHeader != 0 {
		if f&flagSawHeader != 0 {
			if p, ok := ctx.Value(priorityKey{}).(Priority); ok {
				return p
			}
		}
		return s.priorityOf(method, nil)
	}
	return s.priorityOf(method, s.headerValue(ctx))
}

// headerValue returns the priority header's values. It allocates only when
// the header is present (metadata.FromIncomingContext would copy the whole
// map on every call).
func (s *Shedder) headerValue(ctx context.Context) []string {
	if s.header == "" {
		return nil
	}
	return metadata.ValueFromIncomingContext(ctx, s.header)
}
