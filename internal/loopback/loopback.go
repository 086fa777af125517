// Package loopback finds ports on loopback addresses, for replicas that
// share one port on several addresses (127.0.0.2, 127.0.0.3, …) as the pods
// behind a headless Service do.
package loopback

import (
	"fmt"
	"net"
)

// FreePort returns a TCP port free on every one of ips, or an error after
// 100 tries.
func FreePort(ips ...string) (int, error) {
	for range 100 {
		l, err := net.Listen("tcp", net.JoinHostPort(ips[0], "0"))
		if err != nil {
			return 0, err
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		ok := true
		for _, ip := range ips[1:] {
			l2, err := net.Listen("tcp", net.JoinHostPort(ip, fmt.Sprint(port)))
			if err != nil {
				ok = false
				break
			}
			l2.Close()
		}
		if ok {
			return port, nil
		}
	}
	return 0, fmt.Errorf("loopback: no port free on all of %v", ips)
}
