package dnsserver

import (
	"context"
	"net"
	"slices"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestResolvesCurrentSet(t *testing.T) {
	s, err := Start("svc.test")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	r := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "udp", s.Addr())
	}}
	for _, want := range [][]string{{"127.0.0.2", "127.0.0.3"}, {"127.0.0.2", "127.0.0.3", "127.0.0.4"}} {
		var ips []net.IP
		for _, a := range want {
			ips = append(ips, net.ParseIP(a))
		}
		s.Set(ips...)
		got, err := r.LookupHost(context.Background(), "svc.test")
		if err != nil {
			t.Fatal(err)
		}
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Errorf("LookupHost = %v, want %v", got, want)
		}
	}
}
