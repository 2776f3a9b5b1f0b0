// caas-tapfd: a host helper in the VM launch chain (ADR-006, "the tap reaches QEMU as an fd"). As root, in the
// network namespace it was started in, it attaches to the existing tap NAME, puts the open file at descriptor FD
// and execs the rest of the command line (prlimit, setpriv, QEMU: `-netdev tap,fd=FD`). QEMU then needs neither
// /dev/net/tun access nor any capability.
//
//	caas-tapfd NAME FD -- COMMAND [ARG...]
package main

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"unsafe"
)

const (
	iffTap     = 0x0002
	iffNoPi    = 0x1000
	iffVnetHdr = 0x4000
	tunSetIff  = 0x400454ca
)

func fail(format string, a ...interface{}) {
	fmt.Fprintf(os.Stderr, "caas-tapfd: "+format+"\n", a...)
	os.Exit(126)
}

func main() {
	args := os.Args[1:]
	if len(args) < 4 || args[2] != "--" {
		fail("usage: caas-tapfd NAME FD -- COMMAND [ARG...]")
	}
	name := args[0]
	if len(name) == 0 || len(name) > 15 {
		fail("tap name must be 1..15 bytes")
	}
	target, err := strconv.Atoi(args[1])
	if err != nil || target < 3 || target > 1023 {
		fail("FD must be 3..1023")
	}
	fd, err := syscall.Open("/dev/net/tun", syscall.O_RDWR, 0)
	if err != nil {
		fail("open /dev/net/tun: %v", err)
	}
	var req [40]byte // struct ifreq: name[16], flags (short)
	copy(req[:16], name)
	*(*uint16)(unsafe.Pointer(&req[16])) = iffTap | iffNoPi | iffVnetHdr
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, uintptr(fd), tunSetIff, uintptr(unsafe.Pointer(&req[0]))); e != 0 {
		fail("attach to tap %s: %v", name, e)
	}
	if fd != target {
		if err := syscall.Dup2(fd, target); err != nil {
			fail("dup2: %v", err)
		}
		syscall.Close(fd)
	}
	// Dup2 clears close-on-exec on the new descriptor: it survives the exec chain into QEMU.
	path, err := exec.LookPath(args[3])
	if err != nil {
		fail("%s: %v", args[3], err)
	}
	if err := syscall.Exec(path, args[3:], os.Environ()); err != nil {
		fail("exec %s: %v", path, err)
	}
}
