package telemetry

import (
	"context"
	"fmt"
	"net"

	"go.opentelemetry.io/otel/sdk/resource"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
)

// hostIPs detects host.ip: the host's addresses, loopback and link-local ones left out, as the
// conventions define it. With host.name it says which spans come from one host, and so from one
// clock: Jaeger compares the timing of a child span with its parent's only when they come from
// different hosts (deploy/otel-config.yaml hands it the host under the name its UI reads).
type hostIPs struct{}

func (hostIPs) Detect(context.Context) (*resource.Resource, error) {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil, fmt.Errorf("telemetry: host addresses: %w", err)
	}
	ips := hostAddresses(addrs)
	if len(ips) == 0 {
		return resource.Empty(), nil
	}
	return resource.NewWithAttributes(semconv.SchemaURL, semconv.HostIP(ips...)), nil
}

// hostAddresses keeps the addresses other hosts could reach this one at, in the order the
// system lists its interfaces, which every process of the host sees alike.
func hostAddresses(addrs []net.Addr) []string {
	var ips []string
	for _, a := range addrs {
		var ip net.IP
		switch a := a.(type) {
		case *net.IPNet:
			ip = a.IP
		case *net.IPAddr:
			ip = a.IP
		}
		if ip == nil || ip.IsLoopback() || ip.IsLinkLocalUnicast() || ip.IsUnspecified() {
			continue
		}
		ips = append(ips, ip.String())
	}
	return ips
}
