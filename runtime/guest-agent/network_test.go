package main

import (
	"encoding/binary"
	"net"
	"syscall"
	"testing"
)

func TestParseNetwork(t *testing.T) {
	ok := NetworkParams{MAC: "02:ca:0a:00:00:02", Address: "10.0.0.2/24", Gateway: "10.0.0.1", MTU: 1450}
	c, err := parseNetwork(ok)
	if err != nil || c.prefix != 24 || !c.ip.Equal(net.IPv4(10, 0, 0, 2)) || c.mtu != 1450 {
		t.Fatalf("parseNetwork(%+v) = %+v, %v", ok, c, err)
	}
	for name, bad := range map[string]NetworkParams{
		"mac":              {MAC: "nope", Address: ok.Address, Gateway: ok.Gateway, MTU: ok.MTU},
		"ipv6":             {MAC: ok.MAC, Address: "fd00::2/64", Gateway: "fd00::1", MTU: ok.MTU},
		"no prefix":        {MAC: ok.MAC, Address: "10.0.0.2", Gateway: ok.Gateway, MTU: ok.MTU},
		"gateway outside":  {MAC: ok.MAC, Address: ok.Address, Gateway: "10.0.1.1", MTU: ok.MTU},
		"gateway is self":  {MAC: ok.MAC, Address: ok.Address, Gateway: "10.0.0.2", MTU: ok.MTU},
		"mtu":              {MAC: ok.MAC, Address: ok.Address, Gateway: ok.Gateway, MTU: 100},
		"prefix too large": {MAC: ok.MAC, Address: "10.0.0.2/32", Gateway: "10.0.0.1", MTU: ok.MTU},
	} {
		if _, err := parseNetwork(bad); err == nil {
			t.Errorf("%s: %+v accepted", name, bad)
		}
	}
}

func TestNetlinkMessages(t *testing.T) {
	c, _ := parseNetwork(NetworkParams{MAC: "02:ca:0a:00:00:02", Address: "10.0.0.2/24", Gateway: "10.0.0.1", MTU: 1450})
	a := addrMessage(7, c)
	if a[0] != syscall.AF_INET || a[1] != 24 || binary.LittleEndian.Uint32(a[4:8]) != 7 {
		t.Fatalf("ifaddrmsg %v", a[:8])
	}
	// Two 8-byte attributes (4 header + 4 address) after the 8-byte ifaddrmsg.
	if len(a) != 24 || binary.LittleEndian.Uint16(a[10:12]) != syscall.IFA_LOCAL || !net.IP(a[12:16]).Equal(c.ip) {
		t.Fatalf("address attributes %v", a)
	}
	r := routeMessage(7, c.gateway)
	if r[1] != 0 || r[4] != syscall.RT_TABLE_MAIN || binary.LittleEndian.Uint32(r[8:12]) != syscall.RTNH_F_ONLINK {
		t.Fatalf("rtmsg %v", r[:12])
	}
	if binary.LittleEndian.Uint16(r[14:16]) != syscall.RTA_GATEWAY || !net.IP(r[16:20]).Equal(c.gateway) ||
		binary.LittleEndian.Uint16(r[22:24]) != syscall.RTA_OIF || binary.LittleEndian.Uint32(r[24:28]) != 7 {
		t.Fatalf("route attributes %v", r)
	}
}
