package main

// Small Linux helpers shared by the agent and the shim.

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"unsafe"
)

const (
	sysFinitModule      = 313 // amd64
	clockBoottime       = 7
	moduleInitCompFile  = 4 // MODULE_INIT_COMPRESSED_FILE
	prCapbsetDrop       = 24
	prSetChildSubreaper = 36
	mntDetach           = 2
)

// boottimeNs reads CLOCK_BOOTTIME in nanoseconds.
func boottimeNs() int64 {
	var ts syscall.Timespec
	syscall.Syscall(syscall.SYS_CLOCK_GETTIME, clockBoottime, uintptr(unsafe.Pointer(&ts)), 0)
	return ts.Sec*1e9 + ts.Nsec
}

var (
	consoleMu sync.Mutex
	consoleFd = 2
	logPrefix = "caas-agent: "
)

// logf writes one diagnostic line to the console (ttyS0 in the VM; the sandbox keeps the console log).
func logf(format string, a ...interface{}) {
	line := logPrefix + fmt.Sprintf(format, a...)
	if !strings.HasSuffix(line, "\n") {
		line += "\n"
	}
	consoleMu.Lock()
	syscall.Write(consoleFd, []byte(line))
	consoleMu.Unlock()
}

// writeFile writes s to an existing file (sysfs/cgroupfs: one write).
func writeFile(path, s string) error {
	fd, err := syscall.Open(path, syscall.O_WRONLY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return &os.PathError{Op: "open", Path: path, Err: err}
	}
	defer syscall.Close(fd)
	if _, err := syscall.Write(fd, []byte(s)); err != nil {
		return &os.PathError{Op: "write", Path: path, Err: err}
	}
	return nil
}

// readSmall reads a small pseudo file.
func readSmall(path string) (string, error) {
	b, err := os.ReadFile(path)
	return string(b), err
}

// readInt reads a file holding one integer ("max" is returned as -1).
func readInt(path string) (int64, error) {
	s, err := readSmall(path)
	if err != nil {
		return 0, err
	}
	s = strings.TrimSpace(s)
	if s == "max" {
		return -1, nil
	}
	return strconv.ParseInt(s, 10, 64)
}

// readKeyed reads "key value" lines (cpu.stat, memory.events) into a map.
func readKeyed(path string) map[string]int64 {
	m := map[string]int64{}
	s, err := readSmall(path)
	if err != nil {
		return m
	}
	for _, line := range strings.Split(s, "\n") {
		f := strings.Fields(line)
		if len(f) == 2 {
			if v, err := strconv.ParseInt(f[1], 10, 64); err == nil {
				m[f[0]] = v
			}
		}
	}
	return m
}

func mount(source, target, fstype string, flags uintptr, data string) error {
	if err := syscall.Mount(source, target, fstype, flags, data); err != nil {
		return fmt.Errorf("mount %s on %s (%s): %w", source, target, fstype, err)
	}
	return nil
}

// finitModule loads a kernel module from a file; a module that is already loaded is fine.
func finitModule(path string) error {
	fd, err := syscall.Open(path, syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer syscall.Close(fd)
	flags := uintptr(0)
	if strings.HasSuffix(path, ".xz") || strings.HasSuffix(path, ".zst") || strings.HasSuffix(path, ".gz") {
		flags = moduleInitCompFile
	}
	empty := []byte{0}
	_, _, e := syscall.Syscall(sysFinitModule, uintptr(fd), uintptr(unsafe.Pointer(&empty[0])), flags)
	if e != 0 && e != syscall.EEXIST {
		return e
	}
	return nil
}

// waitStatusFields turns a wait status into exitCode or signal.
func waitStatusFields(ws syscall.WaitStatus) (exitCode *int, signal *int) {
	switch {
	case ws.Exited():
		return intp(ws.ExitStatus()), nil
	case ws.Signaled():
		return nil, intp(int(ws.Signal()))
	}
	return intp(int(ws)), nil
}

// cloexecPipe returns a pipe as raw fds with O_CLOEXEC.
func cloexecPipe() (r, w int, err error) {
	var p [2]int
	if err = syscall.Pipe2(p[:], syscall.O_CLOEXEC); err != nil {
		return -1, -1, err
	}
	return p[0], p[1], nil
}

// errnoOf extracts an Errno from an error chain, or 0.
func errnoOf(err error) syscall.Errno {
	for err != nil {
		if e, ok := err.(syscall.Errno); ok {
			return e
		}
		u, ok := err.(interface{ Unwrap() error })
		if !ok {
			return 0
		}
		err = u.Unwrap()
	}
	return 0
}

// stamps collects CLOCK_BOOTTIME marks of one operation's steps, logged as one console line at the end
// (a console write per step would itself cost time under emulation).
type stamps struct {
	last  int64
	parts []string
}

func newStamps() *stamps { return &stamps{last: boottimeNs()} }

// mark records the time since the previous mark under what.
func (s *stamps) mark(what string) {
	now := boottimeNs()
	s.parts = append(s.parts, fmt.Sprintf("%s %.1f", what, ms(now-s.last)))
	s.last = now
}

func (s *stamps) String() string { return strings.Join(s.parts, ", ") }
