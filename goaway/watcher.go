package goaway

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Watcher reports the replica set this server belongs to, one lookup after
// another. The Rebalancer decides on what it reports; DNSWatcher is the
// implementation for a Kubernetes headless Service (or any DNS name that
// resolves to every replica). Another source (the Kubernetes API, a
// service registry) only needs these two methods.
type Watcher interface {
	// Watch starts the lookups and calls report with the outcome of each,
	// one call at a time, until Close. It is called once.
	Watch(report func(Lookup)) error
	// Close stops the lookups. When it returns, no report call is running
	// and none will be made. It is idempotent.
	Close() error
}

// Lookup is the outcome of one look at the replica set.
type Lookup struct {
	// At is when the lookup completed. The Rebalancer measures how long a
	// set has been stable, and how long it remembers a set, with it.
	At time.Time
	// Members are the distinct addresses of the replicas, sorted. An empty
	// list means the answer was empty: the Rebalancer treats it like an
	// error and changes nothing.
	Members []string
	// Err is the lookup's error; Members is empty then.
	Err error
}

// DNSWatcher defaults; see DNSWatcherConfig.
const (
	DefaultLookupInterval = time.Second
	// lookupTimeout bounds one lookup; a slower DNS server only delays the
	// next lookup (the timer is re-armed when a lookup ends).
	lookupTimeout = 5 * time.Second
)

// DNSWatcherConfig configures a DNSWatcher.
type DNSWatcherConfig struct {
	// Name is the DNS name that resolves to every replica: in Kubernetes,
	// the headless Service's name ("svc.ns.svc.cluster.local."; a trailing
	// dot skips the pod's search domains). Required.
	Name string
	// Resolver is the host:port of the DNS server to ask. Default "": the
	// system resolver (/etc/resolv.conf).
	Resolver string
	// Interval is the time from the end of one lookup to the start of the
	// next. Default DefaultLookupInterval (1s); allowed 100ms..10m.
	Interval time.Duration
}

// WithDefaults returns c with every zero field set to its default.
func (c DNSWatcherConfig) WithDefaults() DNSWatcherConfig {
	if c.Interval == 0 {
		c.Interval = DefaultLookupInterval
	}
	return c
}

// Validate reports the first invalid field, after defaults are applied.
func (c DNSWatcherConfig) Validate() error {
	c = c.WithDefaults()
	if err := checkDNS("DNSWatcherConfig", c.Name, c.Resolver, ""); err != nil {
		return err
	}
	if c.Interval < 100*time.Millisecond || c.Interval > 10*time.Minute {
		return fmt.Errorf("goaway: DNSWatcherConfig.Interval must be within 100ms..10m (0 means %v), got %v", DefaultLookupInterval, c.Interval)
	}
	return nil
}

// checkDNS validates the Name and Resolver fields of cfg (the struct named
// in the errors); hint ends the error for a missing Name.
func checkDNS(cfg, name, resolver, hint string) error {
	if name == "" {
		return fmt.Errorf("goaway: %s.Name must be set: the DNS name that resolves to every replica "+
			"(in Kubernetes, the headless Service's name)%s", cfg, hint)
	}
	if !validDNSName(name) {
		return fmt.Errorf("goaway: %s.Name must be a DNS name (dot-separated labels of letters, digits, '-' and '_', "+
			"1..63 bytes each, 253 in all, an optional trailing dot), got %q", cfg, name)
	}
	if resolver != "" {
		host, port, err := net.SplitHostPort(resolver)
		if n, perr := strconv.Atoi(port); err != nil || host == "" || perr != nil || n < 1 || n > 65535 {
			return fmt.Errorf("goaway: %s.Resolver must be host:port with a port within 1..65535 "+
				"(empty means the system resolver), got %q", cfg, resolver)
		}
	}
	return nil
}

// validDNSName reports whether name is a syntactically valid DNS name.
func validDNSName(name string) bool {
	name = strings.TrimSuffix(name, ".")
	if name == "" || len(name) > 253 {
		return false
	}
	for _, label := range strings.Split(name, ".") {
		if len(label) == 0 || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			switch b := label[i]; {
			case b >= 'a' && b <= 'z', b >= 'A' && b <= 'Z', b >= '0' && b <= '9', b == '-', b == '_':
			default:
				return false
			}
		}
	}
	return true
}

// DNSWatcher looks up a DNS name periodically and reports its addresses.
//
// It owns one timer (time.AfterFunc), not a goroutine: between lookups
// nothing runs, and the lookup runs on the timer's goroutine, re-arming the
// timer when it ends. It does not use the shared load sampler's tick: a
// lookup is a network round trip that can take up to its 5 s timeout, and
// the sampler's subscribers (load shedding, the load policy) must not wait
// behind it; its period is also unrelated to the sampler's. Close stops the
// timer, cancels a lookup in flight and waits for it.
type DNSWatcher struct {
	// Immutable after NewDNSWatcher:
	cfg      DNSWatcherConfig
	resolver *net.Resolver
	ctx      context.Context // cancelled by Close
	cancel   context.CancelFunc

	mu      sync.Mutex // guards the fields below
	report  func(Lookup)
	timer   *time.Timer
	closed  bool
	running sync.WaitGroup // a lookup in flight; Add under mu while !closed
}

// NewDNSWatcher validates cfg and returns a watcher; lookups start with
// Watch.
func NewDNSWatcher(cfg DNSWatcherConfig) (*DNSWatcher, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.WithDefaults()
	w := &DNSWatcher{cfg: cfg, resolver: net.DefaultResolver}
	if cfg.Resolver != "" {
		addr := cfg.Resolver
		w.resolver = &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		}}
	}
	w.ctx, w.cancel = context.WithCancel(context.Background())
	return w, nil
}

// Watch makes the first lookup at once, then one every Interval after the
// previous one ended, and calls report with each outcome.
func (w *DNSWatcher) Watch(report func(Lookup)) error {
	if report == nil {
		return errors.New("goaway: DNSWatcher.Watch: nil report function")
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	switch {
	case w.closed:
		return errors.New("goaway: DNSWatcher.Watch: watcher closed")
	case w.report != nil:
		return errors.New("goaway: DNSWatcher.Watch: already watching")
	}
	w.report = report
	w.timer = time.AfterFunc(0, w.tick)
	return nil
}

// Close stops the lookups and waits for one in flight to end.
func (w *DNSWatcher) Close() error {
	w.mu.Lock()
	w.closed = true
	if w.timer != nil {
		w.timer.Stop()
	}
	w.mu.Unlock()
	w.cancel()
	w.running.Wait()
	return nil
}

func (w *DNSWatcher) tick() {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return
	}
	w.running.Add(1)
	w.mu.Unlock()
	defer w.running.Done()

	w.report(w.lookup())

	w.mu.Lock()
	if !w.closed {
		w.timer.Reset(w.cfg.Interval)
	}
	w.mu.Unlock()
}

func (w *DNSWatcher) lookup() Lookup {
	ctx, cancel := context.WithTimeout(w.ctx, lookupTimeout)
	defer cancel()
	addrs, err := w.resolver.LookupHost(ctx, w.cfg.Name)
	if de, ok := err.(*net.DNSError); ok && w.cfg.Resolver != "" {
		// Go's resolver names the first server of /etc/resolv.conf in its
		// errors even when Dial sent the query elsewhere: name the server
		// asked, so the log does not send an operator to the wrong one.
		c := *de
		c.Server = w.cfg.Resolver
		err = &c
	}
	l := Lookup{At: time.Now(), Err: err}
	if err == nil {
		slices.Sort(addrs)
		l.Members = slices.Compact(addrs)
	}
	return l
}

// SharedWatcher lets several users (fair-share rebalancing, the health
// guard) watch one replica set through one Watcher, so that one set of
// lookups serves them all. Each View is a Watcher of its own: its Watch
// receives the latest Lookup at once (if there is one) and every Lookup
// after it; the underlying Watcher starts with the first View's Watch and is
// closed when the last View that was handed out is closed.
type SharedWatcher struct {
	// Immutable after NewSharedWatcher:
	w Watcher

	mu      sync.Mutex // guards the fields below; held while reporting
	views   map[*sharedView]func(Lookup)
	last    *Lookup
	started bool
	open    int // views handed out and not closed
	closed  bool
}

// NewSharedWatcher returns a SharedWatcher over w, which it owns.
func NewSharedWatcher(w Watcher) *SharedWatcher {
	return &SharedWatcher{w: w, views: map[*sharedView]func(Lookup){}}
}

// View returns a new Watcher on the shared set.
func (s *SharedWatcher) View() Watcher {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.open++
	return &sharedView{s: s}
}

func (s *SharedWatcher) fanout(l Lookup) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.last = &l
	for _, report := range s.views {
		report(l)
	}
}

type sharedView struct {
	s      *SharedWatcher
	once   sync.Once
	closed bool // guarded by s.mu
}

func (v *sharedView) Watch(report func(Lookup)) error {
	if report == nil {
		return errors.New("goaway: SharedWatcher view: nil report function")
	}
	s := v.s
	s.mu.Lock()
	switch {
	case v.closed || s.closed:
		s.mu.Unlock()
		return errors.New("goaway: SharedWatcher view: closed")
	case s.views[v] != nil:
		s.mu.Unlock()
		return errors.New("goaway: SharedWatcher view: already watching")
	}
	s.views[v] = report
	if s.last != nil {
		report(*s.last)
	}
	start := !s.started
	s.started = true
	s.mu.Unlock()
	if start {
		return s.w.Watch(s.fanout)
	}
	return nil
}

// Close stops reports to this view; the last view closed closes the
// underlying Watcher.
func (v *sharedView) Close() error {
	var err error
	v.once.Do(func() {
		s := v.s
		s.mu.Lock()
		v.closed = true
		delete(s.views, v)
		s.open--
		last := s.open == 0
		if last {
			s.closed = true
		}
		s.mu.Unlock()
		if last {
			err = s.w.Close()
		}
	})
	return err
}
