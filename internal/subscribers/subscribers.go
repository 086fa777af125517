// Package subscribers is the list of callbacks behind load.Sampler.OnSample
// and goaway.Tracker.OnGeneration: registering and cancelling copy the
// list under a lock, and delivering reads it with one atomic load, takes no
// lock and allocates nothing, so a callback may register or cancel
// callbacks while it runs.
package subscribers

import (
	"iter"
	"slices"
	"sync"
	"sync/atomic"
)

// List is a copy-on-write list of callbacks of type F. The zero List is
// empty and ready to use.
type List[F any] struct {
	mu sync.Mutex                  // serialises writers of p
	p  atomic.Pointer[[]*entry[F]] // nil: empty
}

// entry is one registration.
type entry[F any] struct {
	fn        F
	cancelled atomic.Bool
}

// Add registers fn after those already registered. cancel removes it and
// is idempotent; once cancel has returned, All no longer yields fn (a
// delivery that had already passed fn's check may still call it).
func (l *List[F]) Add(fn F) (cancel func()) {
	e := &entry[F]{fn: fn}
	l.mu.Lock()
	next := append(slices.Clone(l.load()), e)
	l.p.Store(&next)
	l.mu.Unlock()
	return func() {
		if e.cancelled.Swap(true) {
			return
		}
		l.mu.Lock()
		defer l.mu.Unlock()
		old := l.load()
		if i := slices.Index(old, e); i >= 0 {
			next := slices.Delete(slices.Clone(old), i, i+1)
			l.p.Store(&next)
		}
	}
}

// All yields the callbacks registered and not cancelled, in the order they
// were added.
func (l *List[F]) All() iter.Seq[F] {
	return func(yield func(F) bool) {
		for _, e := range l.load() {
			if !e.cancelled.Load() && !yield(e.fn) {
				return
			}
		}
	}
}

func (l *List[F]) load() []*entry[F] {
	if p := l.p.Load(); p != nil {
		return *p
	}
	return nil
}
