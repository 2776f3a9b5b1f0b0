package main

// The `network` op: the guest's one interface configured as the host says (ADR-006, "Guest configuration at
// boot"): found by its MAC, its MTU, the address with the tenant prefix, `default via <gateway> onlink`, IPv6 off,
// no DHCP. Netlink and ioctls straight from the syscall package: the initrd holds no `ip`.

import (
	"encoding/binary"
	"fmt"
	"net"
	"os"
	"syscall"
	"time"
	"unsafe"
)

// NetworkParams are the params of `network`.
type NetworkParams struct {
	MAC     string `json:"mac"`
	Address string `json:"address"` // CIDR: 10.0.0.2/24
	Gateway string `json:"gateway"`
	MTU     int    `json:"mtu"`
}

// NetworkResult names the interface that was configured.
type NetworkResult struct {
	Interface string `json:"interface"`
}

type netConfig struct {
	mac     net.HardwareAddr
	ip      net.IP
	prefix  int
	gateway net.IP
	mtu     int
}

func parseNetwork(p NetworkParams) (netConfig, error) {
	mac, err := net.ParseMAC(p.MAC)
	if err != nil || len(mac) != 6 {
		return netConfig{}, badRequest("mac must be a 48-bit MAC address")
	}
	ip, ipnet, err := net.ParseCIDR(p.Address)
	if err != nil || ip.To4() == nil {
		return netConfig{}, badRequest("address must be an IPv4 address with its prefix (10.0.0.2/24)")
	}
	prefix, _ := ipnet.Mask.Size()
	if prefix < 1 || prefix > 30 {
		return netConfig{}, badRequest("address prefix must be 1..30")
	}
	gw := net.ParseIP(p.Gateway)
	if gw == nil || gw.To4() == nil || !ipnet.Contains(gw) || gw.Equal(ip) {
		return netConfig{}, badRequest("gateway must be another IPv4 address of the address's subnet")
	}
	if p.MTU < 576 || p.MTU > 9000 {
		return netConfig{}, badRequest("mtu must be 576..9000")
	}
	return netConfig{mac: mac, ip: ip.To4(), prefix: prefix, gateway: gw.To4(), mtu: p.MTU}, nil
}

// configureNetwork waits (up to `wait`) for the interface with the MAC to appear (virtio_net is a deferred
// module), then configures it and brings up lo. Idempotent: an address or route already there is kept.
func configureNetwork(c netConfig, wait time.Duration) (string, error) {
	var ifc *net.Interface
	deadline := time.Now().Add(wait)
	for ifc == nil {
		list, err := net.Interfaces()
		if err != nil {
			return "", internalErr("list interfaces: %v", err)
		}
		for i := range list {
			if list[i].HardwareAddr.String() == c.mac.String() {
				ifc = &list[i]
			}
		}
		if ifc == nil {
			if time.Now().After(deadline) {
				return "", notFound("no interface with MAC %s", c.mac)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	for _, f := range []string{"/proc/sys/net/ipv6/conf/all/disable_ipv6", "/proc/sys/net/ipv6/conf/default/disable_ipv6",
		"/proc/sys/net/ipv6/conf/" + ifc.Name + "/disable_ipv6"} {
		// Absent when the kernel has no IPv6: then there is nothing to disable.
		if err := os.WriteFile(f, []byte("1"), 0o644); err != nil && !os.IsNotExist(err) {
			return "", internalErr("%s: %v", f, err)
		}
	}
	if err := setLinkUp("lo", 0); err != nil {
		return "", internalErr("lo up: %v", err)
	}
	if err := setLinkUp(ifc.Name, c.mtu); err != nil {
		return "", internalErr("%s up with mtu %d: %v", ifc.Name, c.mtu, err)
	}
	if err := netlinkDo(syscall.RTM_NEWADDR, syscall.NLM_F_CREATE|syscall.NLM_F_REPLACE, addrMessage(ifc.Index, c)); err != nil {
		return "", internalErr("address %s/%d on %s: %v", c.ip, c.prefix, ifc.Name, err)
	}
	if err := netlinkDo(syscall.RTM_NEWROUTE, syscall.NLM_F_CREATE|syscall.NLM_F_REPLACE, routeMessage(ifc.Index, c.gateway)); err != nil {
		return "", internalErr("default via %s on %s: %v", c.gateway, ifc.Name, err)
	}
	return ifc.Name, nil
}

// setLinkUp sets the MTU (when mtu > 0) and IFF_UP with the classic ioctls.
func setLinkUp(name string, mtu int) error {
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_DGRAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer syscall.Close(fd)
	var req [40]byte // struct ifreq: name[16] + union (flags: int16, mtu: int32)
	copy(req[:16], name)
	ioctl := func(op uintptr) error {
		if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, uintptr(fd), op, uintptr(unsafe.Pointer(&req[0]))); e != 0 {
			return e
		}
		return nil
	}
	if mtu > 0 {
		binary.LittleEndian.PutUint32(req[16:20], uint32(mtu))
		if err := ioctl(syscall.SIOCSIFMTU); err != nil {
			return fmt.Errorf("SIOCSIFMTU: %w", err)
		}
	}
	if err := ioctl(syscall.SIOCGIFFLAGS); err != nil {
		return fmt.Errorf("SIOCGIFFLAGS: %w", err)
	}
	flags := binary.LittleEndian.Uint16(req[16:18]) | syscall.IFF_UP
	binary.LittleEndian.PutUint16(req[16:18], flags)
	if err := ioctl(syscall.SIOCSIFFLAGS); err != nil {
		return fmt.Errorf("SIOCSIFFLAGS: %w", err)
	}
	return nil
}

func rtattr(kind uint16, value []byte) []byte {
	n := syscall.SizeofRtAttr + len(value)
	b := make([]byte, (n+3)&^3)
	binary.LittleEndian.PutUint16(b[0:2], uint16(n))
	binary.LittleEndian.PutUint16(b[2:4], kind)
	copy(b[syscall.SizeofRtAttr:], value)
	return b
}

// addrMessage: struct ifaddrmsg + IFA_LOCAL + IFA_ADDRESS.
func addrMessage(index int, c netConfig) []byte {
	b := make([]byte, syscall.SizeofIfAddrmsg)
	b[0] = syscall.AF_INET
	b[1] = byte(c.prefix)
	b[3] = syscall.RT_SCOPE_UNIVERSE
	binary.LittleEndian.PutUint32(b[4:8], uint32(index))
	b = append(b, rtattr(syscall.IFA_LOCAL, c.ip)...)
	return append(b, rtattr(syscall.IFA_ADDRESS, c.ip)...)
}

// routeMessage: struct rtmsg (default route, main table, onlink) + RTA_GATEWAY + RTA_OIF.
func routeMessage(index int, gateway net.IP) []byte {
	b := make([]byte, syscall.SizeofRtMsg)
	b[0] = syscall.AF_INET
	b[4] = syscall.RT_TABLE_MAIN
	b[5] = syscall.RTPROT_BOOT
	b[6] = syscall.RT_SCOPE_UNIVERSE
	b[7] = syscall.RTN_UNICAST
	binary.LittleEndian.PutUint32(b[8:12], syscall.RTNH_F_ONLINK)
	b = append(b, rtattr(syscall.RTA_GATEWAY, gateway)...)
	oif := make([]byte, 4)
	binary.LittleEndian.PutUint32(oif, uint32(index))
	return append(b, rtattr(syscall.RTA_OIF, oif)...)
}

// netlinkDo sends one NETLINK_ROUTE request with NLM_F_ACK and returns the kernel's answer as an error.
func netlinkDo(kind uint16, flags uint16, body []byte) error {
	fd, err := syscall.Socket(syscall.AF_NETLINK, syscall.SOCK_RAW|syscall.SOCK_CLOEXEC, syscall.NETLINK_ROUTE)
	if err != nil {
		return err
	}
	defer syscall.Close(fd)
	if err := syscall.Bind(fd, &syscall.SockaddrNetlink{Family: syscall.AF_NETLINK}); err != nil {
		return err
	}
	msg := make([]byte, syscall.NLMSG_HDRLEN, syscall.NLMSG_HDRLEN+len(body))
	msg = append(msg, body...)
	binary.LittleEndian.PutUint32(msg[0:4], uint32(len(msg)))
	binary.LittleEndian.PutUint16(msg[4:6], kind)
	binary.LittleEndian.PutUint16(msg[6:8], syscall.NLM_F_REQUEST|syscall.NLM_F_ACK|flags)
	binary.LittleEndian.PutUint32(msg[8:12], 1)
	if err := syscall.Sendto(fd, msg, 0, &syscall.SockaddrNetlink{Family: syscall.AF_NETLINK}); err != nil {
		return err
	}
	buf := make([]byte, 4096)
	n, _, err := syscall.Recvfrom(fd, buf, 0)
	if err != nil {
		return err
	}
	msgs, err := syscall.ParseNetlinkMessage(buf[:n])
	if err != nil {
		return err
	}
	for _, m := range msgs {
		if m.Header.Type == syscall.NLMSG_ERROR && len(m.Data) >= 4 {
			if code := int32(binary.LittleEndian.Uint32(m.Data[0:4])); code != 0 {
				return syscall.Errno(-code)
			}
			return nil
		}
	}
	return fmt.Errorf("no acknowledgement from netlink")
}
