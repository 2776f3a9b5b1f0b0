package main

// PID 1: boot the guest (mounts, cgroups, modules), open the two ports, serve the control protocol.

import (
	"encoding/json"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

const (
	cgroupRoot      = "/sys/fs/cgroup"
	cgroupParent    = "/sys/fs/cgroup/c"
	containersDir   = "/run/c"
	defaultOutBuf   = 1 << 20
	maxExitedExecs  = 128
	maxListed       = 256 // containers or execs in one hello (the host's bound)
	maxContainers   = 256
	maxMessageLen   = 4000 // bytes of a message field (the host's bound is 4096 characters)
	diskWait        = 10 * time.Second
	portPollEvery   = 2 * time.Millisecond
	disconnectSleep = 20 * time.Millisecond
)

// Agent is the guest agent's state.
type Agent struct {
	startNs int64
	readyNs int64
	bootID  string

	ring   *Ring
	ctl    *CtlWriter
	reaper *Reaper
	queue  *keyedQueue

	ctlFd, outFd int

	mu           sync.Mutex
	containers   map[string]*Container
	order        []string // container names, oldest first
	execs        map[string]*Exec
	execOrder    []string // exec ids, oldest first
	shuttingDown bool
	setupDone    chan struct{} // closed once cgroups, /run and the modules a container needs are ready
	modulesDone  chan struct{} // closed once every module (the deferred ones too) is loaded
	kickDeferred chan struct{} // closed (once) to load the deferred modules now
	kickOnce     sync.Once
}

// deferredModules are needed neither to become ready nor to run a container from an ext4 image: they are
// loaded once the first container has started (or the guest has idled deferDelay after its setup), so that on
// the single emulated vCPU they do not compete with that start. A run from an erofs image waits for them.
// (pvpanic is not deferred: a workload may panic the guest, e.g. with panic_on_oom, and the host must hear.)
var deferredModules = map[string]bool{"libcrc32c": true, "erofs": true, "failover": true, "net_failover": true, "virtio_net": true}

const deferDelay = 1500 * time.Millisecond

// loadDeferredModules asks for the deferred modules to be loaded now.
func (a *Agent) loadDeferredModules() { a.kickOnce.Do(func() { close(a.kickDeferred) }) }

func moduleName(p string) string {
	n := filepath.Base(p)
	for _, suf := range []string{".xz", ".zst", ".gz", ".ko"} {
		n = strings.TrimSuffix(n, suf)
	}
	return strings.ReplaceAll(n, "-", "_")
}

func agentMain() {
	start := boottimeNs()
	a := &Agent{
		startNs:      start,
		ctl:          NewCtlWriter(),
		queue:        newKeyedQueue(),
		containers:   map[string]*Container{},
		execs:        map[string]*Exec{},
		ctlFd:        -1,
		outFd:        -1,
		setupDone:    make(chan struct{}),
		modulesDone:  make(chan struct{}),
		kickDeferred: make(chan struct{}),
	}
	a.reaper = startReaper()
	ignoreSignals()
	// Critical path to ready: /dev and /sys (to find and open the ports), /proc, the modules up to the
	// one that brings the virtio-serial ports, the ports. The rest (cgroups, /run, the remaining modules)
	// happens right after ready; `run` waits for it.
	a.earlyBoot()
	tEarly := boottimeNs()
	a.ring = NewRing(a.outBufFromCmdline())
	portsReady := make(chan struct{})
	coreModules := make(chan struct{})
	go a.protect("modules", func() { defer close(a.modulesDone); a.loadModules(portsReady, coreModules) })
	a.openPorts()
	a.readyNs = boottimeNs()
	close(portsReady)
	go a.protect("ctl writer", func() { a.ctl.Run(func(b []byte) { writeFull(a.ctlFd, b) }) })
	go a.protect("out writer", a.outWriter)
	logf("ready %.1f ms after agent start (mounts %.1f ms, modules and ports %.1f ms); kernel start to agent start %.1f ms",
		ms(a.readyNs-a.startNs), ms(tEarly-a.startNs), ms(a.readyNs-tEarly), ms(a.startNs))
	go a.protect("late boot", func() {
		t := boottimeNs()
		a.lateBoot()
		late := boottimeNs() - t
		<-coreModules
		close(a.setupDone)
		logf("setup done %.1f ms after agent start (cgroups and /run %.1f ms)", ms(boottimeNs()-a.startNs), ms(late))
	})
	// Keep the run-time heap small: the agent lives in a VM with little memory.
	debug.SetGCPercent(50)
	for {
		a.protect("ctl reader", a.ctlReadLoop)
		time.Sleep(disconnectSleep)
	}
}

// ignoreSignals keeps PID 1 alive: the kernel may send init SIGINT (ctrl-alt-del) or SIGPWR, and Go's
// default for several signals is to exit, which would panic the kernel. Handled with Notify rather than
// ignored, so the shims start with default dispositions.
func ignoreSignals() {
	ch := make(chan os.Signal, 8)
	signal.Notify(ch, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT, syscall.SIGUSR1,
		syscall.SIGUSR2, syscall.SIGPWR, syscall.SIGALRM, syscall.SIGPIPE, syscall.SIGTSTP, syscall.SIGTTIN,
		syscall.SIGTTOU, syscall.SIGVTALRM, syscall.SIGPROF, syscall.SIGXCPU, syscall.SIGXFSZ)
	go func() {
		for s := range ch {
			if s != syscall.SIGPIPE {
				logf("ignoring signal %v", s)
			}
		}
	}()
}

func ms(ns int64) float64 { return float64(ns) / 1e6 }

// protect runs f and turns a panic into a log line and a warning: PID 1 must never exit.
func (a *Agent) protect(what string, f func()) {
	defer func() {
		if r := recover(); r != nil {
			logf("internal error in %s: %v\n%s", what, r, debug.Stack())
			a.ctl.Emit(Event{Event: "guest.warning", Message: truncate(fmt.Sprintf("internal error in %s: %v", what, r), maxMessageLen)})
		}
	}()
	f()
}

// earlyBoot makes / pivotable and mounts /dev, /proc and /sys.
func (a *Agent) earlyBoot() {
	// Make "/" a bind mount of the initramfs on top of the initramfs itself: pivot_root refuses a root
	// that is the namespace's initial rootfs, and the shims need pivot_root.
	rebindErr := rebindRoot()
	os.MkdirAll("/dev", 0o755)
	devErr := mount("devtmpfs", "/dev", "devtmpfs", syscall.MS_NOSUID, "mode=0755")
	setupConsole()
	if rebindErr != nil {
		a.warn("rebind /: %v (containers cannot pivot_root)", rebindErr)
	}
	if devErr != nil && errnoOf(devErr) != syscall.EBUSY {
		a.warn("%v", devErr)
	}
	a.mountAll([]mountSpec{{"proc", "/proc", "proc", ""}, {"sysfs", "/sys", "sysfs", ""}})
	if b, err := os.ReadFile("/proc/sys/kernel/random/boot_id"); err == nil && len(strings.TrimSpace(string(b))) > 0 {
		a.bootID = strings.TrimSpace(string(b))
	} else {
		a.warn("boot id: %v", err)
		a.bootID = fmt.Sprintf("boottime-%d", a.startNs) // never empty
	}
}

type mountSpec struct{ src, dir, fs, data string }

func (a *Agent) mountAll(ms []mountSpec) {
	for _, m := range ms {
		os.MkdirAll(m.dir, 0o755)
		if err := mount(m.src, m.dir, m.fs, syscall.MS_NOSUID|syscall.MS_NODEV|syscall.MS_NOEXEC, m.data); err != nil && errnoOf(err) != syscall.EBUSY {
			a.warn("%v", err)
		}
	}
}

// lateBoot mounts cgroup2 and /run and enables the cpu, memory and pids controllers.
func (a *Agent) lateBoot() {
	// favordynmods (Linux ≥ 6.0): moving a process into a cgroup and enabling controllers no longer wait
	// for an RCU grace period (tens of ms under emulation), at a small cost to every fork and exit.
	os.MkdirAll(cgroupRoot, 0o755)
	cgFlags := uintptr(syscall.MS_NOSUID | syscall.MS_NODEV | syscall.MS_NOEXEC)
	if err := mount("cgroup2", cgroupRoot, "cgroup2", cgFlags, "nsdelegate,favordynmods"); err != nil && errnoOf(err) != syscall.EBUSY {
		if err := mount("cgroup2", cgroupRoot, "cgroup2", cgFlags, "nsdelegate"); err != nil && errnoOf(err) != syscall.EBUSY {
			a.warn("%v", err)
		}
	}
	a.mountAll([]mountSpec{{"tmpfs", "/run", "tmpfs", "mode=0755"}})
	os.MkdirAll(containersDir, 0o700)
	if err := writeFile(cgroupRoot+"/cgroup.subtree_control", "+cpu +memory +pids"); err != nil {
		a.warn("enable cgroup controllers: %v", err)
	}
	if err := os.Mkdir(cgroupParent, 0o755); err != nil && !os.IsExist(err) {
		a.warn("create %s: %v", cgroupParent, err)
	}
	if err := writeFile(cgroupParent+"/cgroup.subtree_control", "+cpu +memory +pids"); err != nil {
		a.warn("enable cgroup controllers in %s: %v", cgroupParent, err)
	}
}

// rebindRoot moves a bind mount of / onto / and chroots into it (as switch_root would).
func rebindRoot() error {
	const tmp = "/run"
	os.MkdirAll(tmp, 0o755)
	if err := mount("/", tmp, "", syscall.MS_BIND, ""); err != nil {
		return err
	}
	if err := syscall.Chdir(tmp); err != nil {
		return err
	}
	if err := mount(".", "/", "", syscall.MS_MOVE, ""); err != nil {
		syscall.Unmount(tmp, mntDetach)
		syscall.Chdir("/")
		return err
	}
	if err := syscall.Chroot("."); err != nil {
		return err
	}
	return syscall.Chdir("/")
}

// setupConsole makes sure fds 0–2 are open (the initramfs may have no /dev/console, and then the kernel
// starts init with none) and points the log at the console.
func setupConsole() {
	fd, err := syscall.Open("/dev/console", syscall.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		return
	}
	for i := 0; i <= 2; i++ {
		var st syscall.Stat_t
		if syscall.Fstat(i, &st) != nil && i != fd {
			syscall.Dup3(fd, i, 0)
		}
	}
	if fd > 2 {
		syscall.CloseOnExec(fd)
		consoleFd = fd
	} else {
		consoleFd = 2
	}
}

func (a *Agent) outBufFromCmdline() int {
	b, err := os.ReadFile("/proc/cmdline")
	if err != nil {
		return defaultOutBuf
	}
	for _, f := range strings.Fields(string(b)) {
		if v := strings.TrimPrefix(f, "caas.outbuf="); v != f {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n < maxChunkData || n > 1<<30 {
				a.warn("ignoring caas.outbuf=%s: must be %d..%d bytes", truncate(v, 40), maxChunkData, 1<<30)
				return defaultOutBuf
			}
			return int(n)
		}
	}
	return defaultOutBuf
}

// loadModules loads /etc/modules in order; failures are warnings. Once a module has brought the
// virtio-ports class (virtio_console), it waits for the agent to open the ports before loading the next
// one, so the rest does not delay readiness. core is closed once every module but the deferred ones is
// loaded; those follow when asked for (loadDeferredModules) or after deferDelay.
func (a *Agent) loadModules(portsReady <-chan struct{}, core chan struct{}) {
	var coreOnce sync.Once
	coreDone := func() { coreOnce.Do(func() { close(core) }) }
	defer coreDone()
	b, err := os.ReadFile("/etc/modules")
	if err != nil {
		if !os.IsNotExist(err) {
			a.warn("read /etc/modules: %v", err)
		}
		return
	}
	var times []string
	load := func(p string) {
		t := boottimeNs()
		if err := finitModule(p); err != nil {
			a.warn("load module %s: %v", p, err)
		}
		times = append(times, fmt.Sprintf("%s %.1f (at %.1f)", moduleName(p), ms(boottimeNs()-t), ms(t-a.startNs)))
	}
	var deferred []string
	waited := false
	for _, line := range strings.Split(string(b), "\n") {
		p := strings.TrimSpace(line)
		if p == "" || strings.HasPrefix(p, "#") {
			continue
		}
		if deferredModules[moduleName(p)] {
			deferred = append(deferred, p)
			continue
		}
		if !waited {
			if _, err := os.Stat("/sys/class/virtio-ports"); err == nil {
				waited = true
				select {
				case <-portsReady:
				case <-time.After(3 * time.Second):
				}
			}
		}
		load(p)
	}
	coreDone()
	if len(deferred) > 0 {
		select {
		case <-a.kickDeferred:
		case <-time.After(deferDelay):
		}
		for _, p := range deferred {
			load(p)
		}
	}
	logf("modules loaded (ms): %s", strings.Join(times, ", "))
}

func (a *Agent) warn(format string, args ...interface{}) {
	msg := truncate(fmt.Sprintf(format, args...), maxMessageLen)
	logf("warning: %s", msg)
	a.ctl.Emit(Event{Event: "guest.warning", Message: msg})
}

// findPorts maps virtio-serial port names to device paths.
func findPorts() map[string]string {
	res := map[string]string{}
	ents, err := os.ReadDir("/sys/class/virtio-ports")
	if err != nil {
		return res
	}
	for _, e := range ents {
		b, err := os.ReadFile("/sys/class/virtio-ports/" + e.Name() + "/name")
		if err != nil {
			continue
		}
		res[strings.TrimSpace(string(b))] = "/dev/" + e.Name()
	}
	return res
}

// openPorts waits for caas.ctl and caas.out and opens them (blocking I/O: a dedicated goroutine each).
func (a *Agent) openPorts() {
	began := time.Now()
	lastLog := began
	for a.ctlFd < 0 || a.outFd < 0 {
		ports := findPorts()
		for name, fd := range map[string]*int{"caas.ctl": &a.ctlFd, "caas.out": &a.outFd} {
			if *fd >= 0 {
				continue
			}
			if dev, ok := ports[name]; ok {
				if f, err := syscall.Open(dev, syscall.O_RDWR|syscall.O_CLOEXEC|syscall.O_NOCTTY, 0); err == nil {
					*fd = f
				} else if err != syscall.ENOENT {
					if time.Since(lastLog) > 10*time.Second {
						logf("open %s (%s): %v", dev, name, err)
					}
				}
			}
		}
		if a.ctlFd >= 0 && a.outFd >= 0 {
			break
		}
		if time.Since(lastLog) > 10*time.Second {
			lastLog = time.Now()
			logf("still waiting for the virtio-serial ports caas.ctl and caas.out (%.0f s)", time.Since(began).Seconds())
		}
		time.Sleep(portPollEvery)
	}
}

// writeFull writes one frame with one write call where possible (virtio-console takes ≤ 32 KiB per write).
func writeFull(fd int, b []byte) {
	fails := 0
	for len(b) > 0 {
		n, err := syscall.Write(fd, b)
		if err == syscall.EINTR || err == syscall.EAGAIN {
			continue
		}
		if err != nil {
			fails++
			if fails == 1 {
				logf("write to port: %v", err)
			}
			if fails > 100 {
				return // give up on this frame; a reconnecting host replays
			}
			time.Sleep(disconnectSleep)
			continue
		}
		b = b[n:]
	}
}

func (a *Agent) outWriter() {
	for {
		f, ok := a.ring.Next()
		if !ok {
			return
		}
		writeFull(a.outFd, f)
	}
}

// isHelloPayload reports whether a frame payload is a well-formed hello request (for resync).
func isHelloPayload(p []byte) bool {
	var env struct {
		ID json.RawMessage `json:"id"`
		Op string          `json:"op"`
	}
	if json.Unmarshal(p, &env) != nil || env.Op != "hello" {
		return false
	}
	_, ok := parseID(env.ID)
	return ok
}

// ctlReadLoop reads and dispatches requests forever.
func (a *Agent) ctlReadLoop() {
	dec := newDecoder(isHelloPayload)
	buf := make([]byte, 64<<10)
	var awaySince time.Time // when reads started returning 0 (no host); zero while connected
	for {
		n, err := syscall.Read(a.ctlFd, buf)
		if err == syscall.EINTR || err == syscall.EAGAIN {
			continue
		}
		if err != nil {
			logf("read caas.ctl: %v", err)
			time.Sleep(disconnectSleep)
			continue
		}
		if n == 0 {
			// No host connected. A partial frame from the previous host is worthless to the next one.
			if dec.Buffered() > 0 || dec.Resyncing() {
				dec.Reset()
			}
			// Poll (the port reports hang-up, so poll(2) would not wait): often at first, then gently.
			if awaySince.IsZero() {
				awaySince = time.Now()
			}
			if time.Since(awaySince) < 5*time.Second {
				time.Sleep(disconnectSleep)
			} else {
				time.Sleep(5 * disconnectSleep)
			}
			continue
		}
		awaySince = time.Time{}
		dec.Feed(buf[:n])
		for {
			f, err := dec.Next()
			if err == errNeedMore {
				break
			}
			if err != nil {
				a.warn("caas.ctl: %v; dropping buffered input until the next hello", err)
				dec.Resync()
				continue
			}
			a.handleFrame(f.Payload)
		}
	}
}

// parseID accepts a positive integer id (≤ 2^53-1, exact in JSON numbers everywhere).
func parseID(raw json.RawMessage) (uint64, bool) {
	s := string(raw)
	if s == "" || len(s) > 16 {
		return 0, false
	}
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil || v == 0 || v > 1<<53-1 {
		return 0, false
	}
	return v, true
}

func (a *Agent) respond(id uint64, result interface{}, err error) {
	a.ctl.Reply(a.responseFrame(id, result, err), nil)
}

func (a *Agent) responseFrame(id uint64, result interface{}, err error) []byte {
	resp := Response{ID: id, OK: err == nil, Result: result}
	if err != nil {
		resp.Result = nil
		re, ok := err.(*reqError)
		if !ok {
			re = &reqError{codeInternal, err.Error()}
		}
		resp.Error = &ErrorBody{Code: re.code, Message: truncate(re.msg, 2048)}
	}
	b, merr := json.Marshal(resp)
	if merr == nil && len(b) > maxJSONPayload {
		merr = fmt.Errorf("response of %d bytes is over the frame limit", len(b))
	}
	if merr != nil {
		b, _ = json.Marshal(Response{ID: id, Error: &ErrorBody{Code: codeInternal, Message: merr.Error()}})
	}
	return encodeFrame(kindJSON, b)
}

type empty struct{}

// handleFrame decodes one request and dispatches it. Fast requests are answered inline; the others are
// queued per container name (so requests about one container keep their order) or run on their own.
func (a *Agent) handleFrame(payload []byte) {
	var env map[string]json.RawMessage
	if err := json.Unmarshal(payload, &env); err != nil {
		a.warn("caas.ctl: a request that is not a JSON object: %v", err)
		return
	}
	id, ok := parseID(env["id"])
	if !ok {
		a.warn("caas.ctl: a request without a positive integer id: %s", truncate(string(payload), 200))
		return
	}
	var op string
	if raw, ok := env["op"]; !ok || json.Unmarshal(raw, &op) != nil {
		a.respond(id, nil, badRequest("op is required"))
		return
	}
	defer func() {
		if r := recover(); r != nil {
			logf("panic handling %s: %v\n%s", op, r, debug.Stack())
			a.respond(id, nil, internalErr("internal error: %v", r))
		}
	}()
	switch op {
	case "hello":
		a.hello(id, payload)
	case "ping":
		a.respond(id, empty{}, nil)
	case "network":
		var p NetworkParams
		if err := decodeParams(payload, &p); err != nil {
			a.respond(id, nil, err)
			return
		}
		cfg, err := parseNetwork(p)
		if err != nil {
			a.respond(id, nil, err)
			return
		}
		go a.protect("network", func() {
			// virtio_net is a deferred module: ask for it now and wait until it is in.
			a.loadDeferredModules()
			select {
			case <-a.modulesDone:
			case <-time.After(30 * time.Second):
			}
			name, err := configureNetwork(cfg, 10*time.Second)
			if err != nil {
				a.respond(id, nil, err)
				return
			}
			a.respond(id, NetworkResult{Interface: name}, nil)
		})
	case "stats":
		a.respond(id, a.stats(), nil)
	case "run":
		var p struct {
			Container *ContainerSpec `json:"container"`
		}
		if err := decodeParams(payload, &p); err != nil {
			a.respond(id, nil, err)
			return
		}
		spec, err := validateSpec(p.Container)
		if err != nil {
			a.respond(id, nil, err)
			return
		}
		a.queue.Do(spec.Name, func() {
			a.protect("run", func() {
				st, err := a.run(spec)
				if err != nil {
					a.respond(id, nil, err)
				} else {
					a.respond(id, map[string]interface{}{"status": st}, nil)
				}
			})
		})
	case "stop", "signal":
		var p struct {
			Name    *string `json:"name"`
			GraceMs *int64  `json:"graceMs"`
			Signal  *int64  `json:"signal"`
		}
		if err := decodeParams(payload, &p); err != nil {
			a.respond(id, nil, err)
			return
		}
		if p.Name == nil || !validName(*p.Name) {
			a.respond(id, nil, badRequest("name is required and must be a container name"))
			return
		}
		if op == "stop" && (p.GraceMs == nil || *p.GraceMs < 0 || *p.GraceMs > 24*3600*1000) {
			a.respond(id, nil, badRequest("graceMs is required: 0..86400000"))
			return
		}
		if op == "signal" && (p.Signal == nil || *p.Signal < 1 || *p.Signal > 64) {
			a.respond(id, nil, badRequest("signal is required: 1..64"))
			return
		}
		name := *p.Name
		a.queue.Do(name, func() {
			a.protect(op, func() {
				var err error
				if op == "stop" {
					err = a.stop(name, time.Duration(*p.GraceMs)*time.Millisecond)
				} else {
					err = a.signal(name, int(*p.Signal))
				}
				a.respond(id, empty{}, err)
			})
		})
	case "exec":
		var p ExecParams
		if err := decodeParams(payload, &p); err != nil {
			a.respond(id, nil, err)
			return
		}
		spec, err := validateExec(&p)
		if err != nil {
			a.respond(id, nil, err)
			return
		}
		a.queue.Do(spec.Container, func() {
			a.protect("exec", func() {
				pid, err := a.exec(spec)
				if err == nil && pid <= 0 {
					err = internalErr("the exec started but its pid is unknown")
				}
				a.respond(id, map[string]int{"pid": pid}, err)
			})
		})
	case "shutdown":
		var p struct {
			GraceMs *int64 `json:"graceMs"`
		}
		if err := decodeParams(payload, &p); err != nil {
			a.respond(id, nil, err)
			return
		}
		if p.GraceMs == nil || *p.GraceMs < 0 || *p.GraceMs > 24*3600*1000 {
			a.respond(id, nil, badRequest("graceMs is required: 0..86400000"))
			return
		}
		grace := time.Duration(*p.GraceMs) * time.Millisecond
		go a.protect("shutdown", func() { a.shutdown(id, grace) })
	default:
		a.respond(id, nil, badRequest("unknown op %q", truncate(op, 64)))
	}
}

func (a *Agent) hello(id uint64, payload []byte) {
	var p struct {
		Protocol   *int64  `json:"protocol"`
		OutputFrom *uint64 `json:"outputFrom"`
		EventsFrom *uint64 `json:"eventsFrom"`
	}
	if err := decodeParams(payload, &p); err != nil {
		a.respond(id, nil, err)
		return
	}
	if p.Protocol == nil {
		a.respond(id, nil, badRequest("protocol is required"))
		return
	}
	if *p.Protocol != protocolVersion {
		a.respond(id, nil, &reqError{codeUnsupported, fmt.Sprintf("protocol %d is not supported; this agent speaks %d", *p.Protocol, protocolVersion)})
		return
	}
	var outFrom, evFrom uint64
	if p.OutputFrom != nil {
		outFrom = *p.OutputFrom
	}
	if p.EventsFrom != nil {
		evFrom = *p.EventsFrom
	}
	a.mu.Lock()
	res := HelloResult{
		Protocol:     protocolVersion,
		AgentVersion: agentVersion,
		BootID:       a.bootID,
		OutputSeq:    a.ring.LastSeq(),
		EventSeq:     a.ctl.LastEventSeq(),
		Containers:   a.containerStatusesLocked(),
		Execs:        a.execStatusesLocked(),
		Timings:      Timings{AgentStartNs: a.startNs, ReadyNs: a.readyNs, NowNs: boottimeNs()},
	}
	a.mu.Unlock()
	// Keep the answer within one frame: drop the oldest finished execs, then finished containers.
	var frame []byte
	for {
		b, err := json.Marshal(Response{ID: id, OK: true, Result: res})
		if err == nil && len(b) <= maxJSONPayload && len(res.Execs) <= maxListed && len(res.Containers) <= maxListed {
			frame = encodeFrame(kindJSON, b)
			break
		}
		if i := firstExited(len(res.Execs), func(i int) bool { return res.Execs[i].State == stateExited }); i >= 0 {
			res.Execs = append(res.Execs[:i], res.Execs[i+1:]...)
		} else if i := firstExited(len(res.Containers), func(i int) bool { return res.Containers[i].State == stateExited }); i >= 0 {
			res.Containers = append(res.Containers[:i], res.Containers[i+1:]...)
		} else {
			frame = a.responseFrame(id, res, nil) // an INTERNAL error saying why
			break
		}
	}
	a.ctl.ReplyHello(frame, evFrom)
	a.ring.Restart(outFrom)
}

func firstExited(n int, exited func(int) bool) int {
	for i := 0; i < n; i++ {
		if exited(i) {
			return i
		}
	}
	return -1
}

func (a *Agent) containerStatusesLocked() []ContainerStatus {
	res := []ContainerStatus{}
	for _, name := range a.order {
		c := a.containers[name]
		if c != nil && c.visible {
			res = append(res, c.statusLocked())
		}
	}
	return res
}

func (a *Agent) execStatusesLocked() []ExecStatus {
	res := []ExecStatus{}
	for _, id := range a.execOrder {
		if e := a.execs[id]; e != nil {
			res = append(res, e.statusLocked())
		}
	}
	return res
}

func (a *Agent) stats() Stats {
	st := Stats{Containers: []ContainerStats{}}
	a.mu.Lock()
	var running []*Container
	for _, name := range a.order {
		if c := a.containers[name]; c != nil && c.running {
			running = append(running, c)
		}
	}
	a.mu.Unlock()
	for _, c := range running {
		cs := ContainerStats{Name: c.spec.Name}
		cs.CPUUsageUs = readKeyed(c.cgroup + "/cpu.stat")["usage_usec"]
		cs.MemoryBytes, _ = readInt(c.cgroup + "/memory.current")
		if v, err := readInt(c.cgroup + "/memory.max"); err == nil && v >= 0 {
			cs.MemoryLimitBytes = int64p(v)
		}
		cs.Pids, _ = readInt(c.cgroup + "/pids.current")
		cs.OOMKills = readKeyed(c.cgroup + "/memory.events")["oom_kill"]
		st.Containers = append(st.Containers, cs)
	}
	if s, err := readSmall("/proc/meminfo"); err == nil {
		for _, line := range strings.Split(s, "\n") {
			f := strings.Fields(line)
			if len(f) < 2 {
				continue
			}
			v, _ := strconv.ParseInt(f[1], 10, 64)
			switch f[0] {
			case "MemTotal:":
				st.Guest.MemTotalBytes = v * 1024
			case "MemAvailable:":
				st.Guest.MemAvailableBytes = v * 1024
			}
		}
	}
	st.Guest.UptimeNs = boottimeNs()
	st.Output.DroppedChunks = a.ring.Dropped()
	return st
}

// shutdown answers, stops every container with the grace, unmounts, syncs and powers off.
func (a *Agent) shutdown(id uint64, grace time.Duration) {
	written := make(chan struct{})
	a.ctl.Reply(a.responseFrame(id, empty{}, nil), written)
	a.mu.Lock()
	a.shuttingDown = true
	var all []*Container
	for _, c := range a.containers {
		all = append(all, c)
	}
	a.mu.Unlock()
	logf("shutdown: stopping %d container(s) with a grace of %v", len(all), grace)
	for _, c := range all {
		a.stopContainer(c, grace)
	}
	deadline := time.After(grace + 15*time.Second)
	for _, c := range all {
		select {
		case <-c.done:
		case <-deadline:
		}
	}
	// Let the response, the exit events and the output reach the host if it is there.
	flushBy := time.Now().Add(2 * time.Second)
	select {
	case <-written:
	case <-time.After(time.Until(flushBy)):
	}
	for time.Now().Before(flushBy) && !(a.ctl.Flushed() && a.ring.Idle()) {
		time.Sleep(5 * time.Millisecond)
	}
	unmountAllUnder(containersDir)
	syscall.Sync()
	logf("powering off")
	if err := syscall.Reboot(syscall.LINUX_REBOOT_CMD_POWER_OFF); err != nil {
		logf("power off: %v", err)
	}
	select {}
}

// unmountAllUnder detaches every mount below dir (deepest first), from /proc/self/mountinfo.
func unmountAllUnder(dir string) {
	s, err := readSmall("/proc/self/mountinfo")
	if err != nil {
		return
	}
	var points []string
	for _, line := range strings.Split(s, "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && strings.HasPrefix(f[4], dir+"/") {
			points = append(points, f[4])
		}
	}
	sort.Slice(points, func(i, j int) bool { return len(points[i]) > len(points[j]) })
	for _, p := range points {
		syscall.Unmount(p, mntDetach)
	}
}
