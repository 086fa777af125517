// Package dnsserver is a tiny authoritative DNS server for one name, served
// in-process on loopback, so the demo shows real DNS round-robin and
// re-resolution without installing anything. It answers A queries for the
// name with the current replica set (TTL 1 s) and an empty answer for
// anything else. Tests that prove claims use the real dnsmasq instead.
package dnsserver

import (
	"net"
	"strings"
	"sync"

	"github.com/miekg/dns"
)

// Server serves one name. Create it with Start; stop it with Close.
type Server struct {
	name string // fully qualified, lower case
	srv  *dns.Server
	addr string

	mu  sync.Mutex // guards ips
	ips []net.IP
}

// Start serves name on a UDP port of 127.0.0.1 and returns when it is ready.
func Start(name string) (*Server, error) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &Server{name: dns.Fqdn(strings.ToLower(name)), addr: pc.LocalAddr().String()}
	ready := make(chan struct{})
	s.srv = &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(s.serve), NotifyStartedFunc: func() { close(ready) }}
	errc := make(chan error, 1)
	go func() { errc <- s.srv.ActivateAndServe() }()
	select {
	case <-ready:
		return s, nil
	case err := <-errc:
		return nil, err
	}
}

// Addr returns the server's host:port, for a dns://ADDR/name target.
func (s *Server) Addr() string { return s.addr }

// Set replaces the addresses the name resolves to.
func (s *Server) Set(ips ...net.IP) {
	s.mu.Lock()
	s.ips = append([]net.IP(nil), ips...)
	s.mu.Unlock()
}

// Close stops the server.
func (s *Server) Close() error { return s.srv.Shutdown() }

func (s *Server) serve(w dns.ResponseWriter, req *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(req)
	m.Authoritative = true
	for _, q := range req.Question {
		if strings.ToLower(q.Name) != s.name || q.Qtype != dns.TypeA {
			continue
		}
		s.mu.Lock()
		for _, ip := range s.ips {
			m.Answer = append(m.Answer, &dns.A{
				Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 1},
				A:   ip,
			})
		}
		s.mu.Unlock()
	}
	_ = w.WriteMsg(m)
}
