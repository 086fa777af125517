package peers

import (
	"testing"

	"github.com/go-kratos/aegis/ratelimit"
	"github.com/go-kratos/aegis/ratelimit/bbr"
)

// BenchmarkAdmit measures a peer's admit+done fast path on all cores, as
// loadshed's BenchmarkAdmit does for the Shedder:
//
//	cd bench && go test -run '^$' -bench BenchmarkAdmit -benchtime 1000000x ./peers/
//
// peer.bbr.admit_ns is go-kratos/aegis ratelimit/bbr's Allow and done.
func BenchmarkAdmit(b *testing.B) {
	b.Run("peer/bbr", func(b *testing.B) {
		l := bbr.NewLimiter()
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				done, err := l.Allow()
				if err != nil {
					b.Fatal(err)
				}
				done(ratelimit.DoneInfo{})
			}
		})
	})
}
