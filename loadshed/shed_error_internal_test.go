package loadshed

import (
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// TestShedErrorMadeOnce: the status error of each limit and priority, and
// the pushback trailer, are made by the first call shed and shared by every
// call after it, also when the first calls race.
func TestShedErrorMadeOnce(t *testing.T) {
	s, err := New(Config{MaxInFlight: 1, Code: codes.ResourceExhausted, Pushback: 250 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for r := reasonStatic; r < numReasons; r++ {
		for p := Priority(0); p < numPriorities; p++ {
			if s.errs[r][p].Load() != nil {
				t.Fatalf("error of %s, %s made before any call was shed", reasonNames[r], p)
			}
			var wg sync.WaitGroup
			got := make([]error, 8)
			for i := range got {
				wg.Go(func() { got[i] = s.shedError(r, p) })
			}
			wg.Wait()
			st := status.Convert(got[0])
			if st.Code() != codes.ResourceExhausted || !strings.Contains(st.Message(), reasonMessages[r]) ||
				!strings.HasSuffix(st.Message(), "; priority "+p.String()) {
				t.Errorf("shedError(%s, %s) = %v", reasonNames[r], p, got[0])
			}
			for _, e := range got {
				if e != got[0] {
					t.Fatalf("shedError(%s, %s) made two errors: %p, %p", reasonNames[r], p, e, got[0])
				}
			}
		}
	}
	if s.trailer.Load() != nil {
		t.Fatal("pushback trailer made before any call was shed")
	}
	md := s.pushbackTrailer()
	if v := md.Get(PushbackHeader); len(v) != 1 || v[0] != "250" {
		t.Errorf("pushback trailer %v, want %s: 250", md, PushbackHeader)
	}
	if s.trailer.Load() == nil || s.pushbackTrailer() == nil {
		t.Error("pushback trailer not kept")
	}

	tap, err := New(Config{MaxInFlight: 1, Pushback: Off})
	if err != nil {
		t.Fatal(err)
	}
	defer tap.Close()
	if md := tap.pushbackTrailer(); md != nil {
		t.Errorf("Pushback Off: trailer %v, want none", md)
	}
}
