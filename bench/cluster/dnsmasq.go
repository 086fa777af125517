package cluster

import "github.com/grpcmgmt/grpcmgmt/internal/dnsmasq"

// DNS is a real dnsmasq serving one name from a hosts file, as the DNS of a
// Kubernetes headless Service does (TTL 1 s).
type DNS = dnsmasq.DNS

// StartDNS starts dnsmasq on 127.0.0.1:port (0: a free port) serving name
// with ips; Close stops it.
func (c *Cluster) StartDNS(name string, port int, ips ...string) (*DNS, error) {
	d, err := dnsmasq.Start(c.Dir, name, port, ips...)
	if err != nil {
		return nil, err
	}
	c.onClose(d.Close)
	return d, nil
}
