package loopback

import (
	"fmt"
	"net"
	"testing"

	"github.com/grpcmgmt/grpcmgmt/internal/leakcheck"
)

func TestFreePortIsFreeOnEveryAddress(t *testing.T) {
	ips := []string{"127.0.0.2", "127.0.0.3", "127.0.0.4"}
	port, err := FreePort(ips...)
	if err != nil {
		t.Fatal(err)
	}
	for _, ip := range ips {
		l, err := net.Listen("tcp", net.JoinHostPort(ip, fmt.Sprint(port)))
		if err != nil {
			t.Fatalf("port %d not free on %s: %v", port, ip, err)
		}
		l.Close()
	}
}

func TestMain(m *testing.M) { leakcheck.VerifyTestMain(m) }
