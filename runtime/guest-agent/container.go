package main

// Containers and execs, agent side: building the sandbox (cgroup, image, writable layer, overlay),
// starting the shim, supervising it, stop/signal/exec, and tearing everything down after the exit.

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Container is one container's agent-side state. Fields marked (a.mu) are guarded by Agent.mu.
type Container struct {
	spec   *Spec
	dir    string // /run/c/<name>
	cgroup string // /sys/fs/cgroup/c/<name>

	status  ContainerStatus // (a.mu)
	visible bool            // (a.mu) listed by hello: started or exited
	running bool            // (a.mu)
	exited  bool            // (a.mu)
	pending map[string]chan execReply

	shimPid int
	sock    int
	sockMu  sync.Mutex

	lastSeq uint64 // atomic: seq of the last output chunk
	outWG   sync.WaitGroup

	mounts     []string // mounted, in order
	cgroupMade bool

	startOnce sync.Once
	startCh   chan struct{} // closed when the start outcome is known
	st        *stamps
	done      chan struct{} // closed when exited and cleaned up
	killOnce  sync.Once
}

// Exec is one exec's agent-side state.
type Exec struct {
	status    ExecStatus // (a.mu)
	container *Container
	lastSeq   uint64 // atomic
	outWG     sync.WaitGroup
	startOOM  int64
	finished  bool // (a.mu)
}

type execReply struct {
	msg *shimMsg
	pid int
}

func (c *Container) statusLocked() ContainerStatus {
	s := c.status
	if !c.exited {
		s.LastOutputSeq = atomic.LoadUint64(&c.lastSeq)
	}
	return s
}

func (e *Exec) statusLocked() ExecStatus {
	s := e.status
	if s.State != stateExited {
		s.LastOutputSeq = atomic.LoadUint64(&e.lastSeq)
	}
	return s
}

func (c *Container) markStarted() { c.startOnce.Do(func() { close(c.startCh) }) }

// pump copies one pipe into the output ring until EOF.
func (a *Agent) pump(f *os.File, stream byte, source string, last *uint64, wg *sync.WaitGroup) {
	defer wg.Done()
	defer f.Close()
	buf := make([]byte, maxChunkData)
	for {
		n, err := f.Read(buf)
		if n > 0 {
			atomic.StoreUint64(last, a.ring.Append(stream, source, buf[:n]))
		}
		if err != nil {
			return
		}
	}
}

// run creates and starts a container; the returned status is running, or exited when it could not start.
func (a *Agent) run(s *Spec) (ContainerStatus, error) {
	a.mu.Lock()
	if a.shuttingDown {
		a.mu.Unlock()
		return ContainerStatus{}, conflict("the guest is shutting down")
	}
	if old := a.containers[s.Name]; old != nil && !old.exited {
		a.mu.Unlock()
		return ContainerStatus{}, conflict("container %s exists", s.Name)
	}
	if _, ok := a.execs[s.Name]; ok {
		a.mu.Unlock()
		return ContainerStatus{}, conflict("%s is the id of an exec", s.Name)
	}
	a.trimContainersLocked()
	if len(a.containers) >= maxContainers {
		a.mu.Unlock()
		return ContainerStatus{}, conflict("too many containers (%d)", maxContainers)
	}
	c := &Container{
		spec:    s,
		dir:     filepath.Join(containersDir, s.Name),
		cgroup:  filepath.Join(cgroupParent, s.Name),
		status:  ContainerStatus{Name: s.Name, State: stateRunning},
		pending: map[string]chan execReply{},
		sock:    -1,
		startCh: make(chan struct{}),
		done:    make(chan struct{}),
	}
	if _, ok := a.containers[s.Name]; ok {
		for i, n := range a.order {
			if n == s.Name {
				a.order = append(a.order[:i], a.order[i+1:]...)
				break
			}
		}
	}
	a.containers[s.Name] = c
	a.order = append(a.order, s.Name)
	a.mu.Unlock()

	st := newStamps()
	c.st = st
	select {
	case <-a.setupDone:
	case <-time.After(30 * time.Second):
	}
	if s.FsType == "erofs" {
		a.loadDeferredModules()
		select {
		case <-a.modulesDone:
		case <-time.After(30 * time.Second):
		}
	}
	st.mark("setup-wait")
	// Whatever happens to this run, the deferred modules are not held back any longer than it.
	defer a.loadDeferredModules()
	if err := a.prepare(c); err != nil {
		a.teardown(c)
		a.finish(c, outcome{reason: reasonStartFailed, message: err.Error()})
		return a.statusOf(c), nil
	}
	if err := a.startShim(c); err != nil {
		a.teardown(c)
		a.finish(c, outcome{reason: reasonStartFailed, message: err.Error()})
		return a.statusOf(c), nil
	}
	select {
	case <-c.startCh:
	case <-time.After(60 * time.Second):
		logf("%s: no start report from the shim after 60 s; killing it", s.Name)
		syscall.Kill(c.shimPid, syscall.SIGKILL)
		<-c.startCh
	}
	st.mark("started")
	logf("%s: run (ms): %s", s.Name, st)
	a.mu.Lock()
	late := a.shuttingDown
	a.mu.Unlock()
	if late {
		a.stopContainer(c, 0) // started while the guest was shutting down
	}
	return a.statusOf(c), nil
}

func (a *Agent) statusOf(c *Container) ContainerStatus {
	a.mu.Lock()
	defer a.mu.Unlock()
	return c.statusLocked()
}

// waitDisk finds the block device whose virtio serial is serial, waiting a bounded time for it.
func waitDisk(serial string, timeout time.Duration) (string, error) {
	deadline := time.Now().Add(timeout)
	for {
		ents, _ := os.ReadDir("/sys/block")
		for _, e := range ents {
			b, err := os.ReadFile("/sys/block/" + e.Name() + "/serial")
			if err == nil && strings.TrimSpace(string(b)) == serial {
				dev := "/dev/" + e.Name()
				if _, err := os.Stat(dev); err == nil {
					return dev, nil
				}
			}
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("no disk with serial %q after %v", serial, timeout)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// prepare builds the cgroup and the root filesystem.
func (a *Agent) prepare(c *Container) error {
	s := c.spec
	dev, err := waitDisk(s.Disk, diskWait)
	if err != nil {
		return err
	}
	c.st.mark("disk")
	// The cgroup, with its limits.
	if err := os.Mkdir(c.cgroup, 0o755); err != nil {
		if !os.IsExist(err) {
			return fmt.Errorf("create cgroup: %w", err)
		}
		// Left over from a container that could not be cleaned up: reuse it only if it is empty.
		if procs, _ := readSmall(c.cgroup + "/cgroup.procs"); strings.TrimSpace(procs) != "" {
			return fmt.Errorf("cgroup %s still has processes", c.cgroup)
		}
	}
	c.cgroupMade = true
	limits := [][2]string{{"memory.oom.group", "1"}}
	if s.MemoryBytes > 0 {
		limits = append(limits, [2]string{"memory.max", strconv.FormatInt(s.MemoryBytes, 10)})
	}
	if _, err := os.Stat(c.cgroup + "/memory.swap.max"); err == nil {
		limits = append(limits, [2]string{"memory.swap.max", "0"})
	}
	if s.CPUMillis > 0 {
		quota := s.CPUMillis * 100
		if quota < 1000 {
			quota = 1000 // the kernel's minimum quota is 1 ms
		}
		limits = append(limits, [2]string{"cpu.max", strconv.FormatInt(quota, 10) + " 100000"})
	}
	if s.Pids > 0 {
		limits = append(limits, [2]string{"pids.max", strconv.FormatInt(s.Pids, 10)})
	}
	for _, l := range limits {
		if err := writeFile(c.cgroup+"/"+l[0], l[1]); err != nil {
			return fmt.Errorf("cgroup limit %s=%s: %w", l[0], l[1], err)
		}
	}
	c.st.mark("cgroup")
	// Image (read-only), writable layer (tmpfs), overlay.
	image, rw, rootfs := c.dir+"/image", c.dir+"/rw", c.dir+"/rootfs"
	for _, d := range []string{image, rw, rootfs} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	data := ""
	if s.FsType == "ext4" {
		data = "noload" // never replay a journal on a read-only image
	}
	if err := mount(dev, image, s.FsType, syscall.MS_RDONLY|syscall.MS_NODEV, data); err != nil {
		return fmt.Errorf("image disk %s: %w", s.Disk, err)
	}
	c.mounts = append(c.mounts, image)
	c.st.mark("mount-image")
	if err := mount("tmpfs", rw, "tmpfs", syscall.MS_NODEV, fmt.Sprintf("size=%d,mode=0755", s.WritableLayerBytes)); err != nil {
		return fmt.Errorf("writable layer: %w", err)
	}
	c.mounts = append(c.mounts, rw)
	if err := os.Mkdir(rw+"/upper", 0o755); err != nil {
		return err
	}
	if err := os.Mkdir(rw+"/work", 0o700); err != nil {
		return err
	}
	opts := fmt.Sprintf("lowerdir=%s,upperdir=%s/upper,workdir=%s/work", image, rw, rw)
	if err := mount("overlay", rootfs, "overlay", syscall.MS_NODEV, opts); err != nil {
		return fmt.Errorf("overlay: %w", err)
	}
	c.mounts = append(c.mounts, rootfs)
	c.st.mark("tmpfs+overlay")
	return nil
}

// startShim starts the shim with new mount, PID, UTS and IPC namespaces and sends its configuration.
func (a *Agent) startShim(c *Container) error {
	s := c.spec
	outR, outW, err := os.Pipe()
	if err != nil {
		return err
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		outR.Close()
		outW.Close()
		return err
	}
	sp, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_SEQPACKET|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		outR.Close()
		outW.Close()
		errR.Close()
		errW.Close()
		return err
	}
	syscall.SetsockoptInt(sp[0], syscall.SOL_SOCKET, syscall.SO_PASSCRED, 1)
	shimEnd := os.NewFile(uintptr(sp[1]), "shim-socket")
	devnull, err := os.Open("/dev/null")
	if err != nil {
		return err
	}
	proc, err := os.StartProcess("/proc/self/exe", []string{"caas-shim", "shim", s.Name}, &os.ProcAttr{
		Env:   []string{"GOMAXPROCS=1", "GOGC=50"},
		Files: []*os.File{devnull, outW, errW, shimEnd},
		Sys: &syscall.SysProcAttr{
			Cloneflags: syscall.CLONE_NEWNS | syscall.CLONE_NEWPID | syscall.CLONE_NEWUTS | syscall.CLONE_NEWIPC,
		},
	})
	devnull.Close()
	outW.Close()
	errW.Close()
	shimEnd.Close()
	if err != nil {
		outR.Close()
		errR.Close()
		syscall.Close(sp[0])
		return fmt.Errorf("start the shim: %w", err)
	}
	c.shimPid = proc.Pid
	proc.Release()
	c.st.mark("shim-forked")
	c.sock = sp[0]
	shimExit := a.reaper.Watch(c.shimPid)
	c.outWG.Add(2)
	go a.protect("output", func() { a.pump(outR, streamStdout, s.Name, &c.lastSeq, &c.outWG) })
	go a.protect("output", func() { a.pump(errR, streamStderr, s.Name, &c.lastSeq, &c.outWG) })
	cfg := &shimConfig{
		Name: s.Name, Hostname: s.Hostname, Rootfs: c.dir + "/rootfs", Cgroup: c.cgroup,
		Argv: s.Argv, Env: s.Env, Dir: s.WorkingDir, UID: s.UID, GID: s.GID, Groups: s.Groups,
	}
	if err := sendShimMsg(c.sock, &shimMsg{T: mConfig, Config: cfg}, nil); err != nil {
		logf("%s: send the configuration to the shim: %v", s.Name, err)
		syscall.Kill(c.shimPid, syscall.SIGKILL)
	}
	c.st.mark("config-sent")
	go a.protect("supervise "+s.Name, func() { a.supervise(c, shimExit) })
	return nil
}

// outcome is how a container ended.
type outcome struct {
	exitCode *int
	signal   *int
	reason   string // set for start failures
	message  string
	oom      bool // execs: the cgroup's OOM kill count went up while it ran
}

// statusReason is the reason of the exited status: the outcome's own if it has one, else OOMKilled for a
// SIGKILL during an OOM kill (oom), Signaled, Completed (exit 0) or Error.
func (o outcome) statusReason() string {
	switch {
	case o.reason != "":
		return o.reason
	case o.signal != nil && *o.signal == int(syscall.SIGKILL) && o.oom:
		return reasonOOMKilled
	case o.signal != nil:
		return reasonSignaled
	case o.exitCode != nil && *o.exitCode == 0:
		return reasonCompleted
	default:
		return reasonError
	}
}

// supervise reads the shim's reports until it goes away, then finishes the container.
func (a *Agent) supervise(c *Container, shimExit <-chan syscall.WaitStatus) {
	buf := make([]byte, shimMsgMax)
	oob := newOOB()
	var out *outcome
	started := false
	for {
		r, err := recvShimMsg(c.sock, buf, oob)
		if err != nil {
			if err == errPeerClosed || errnoOf(err) != 0 {
				break
			}
			logf("%s: bad message from the shim: %v", c.spec.Name, err)
			continue
		}
		closeAll(r.fds)
		m := r.msg
		pid := m.Pid // inside the container: only if the kernel could not translate it
		if m.CredPid && r.cred != nil && r.cred.Pid > 0 {
			pid = int(r.cred.Pid)
		}
		switch m.T {
		case mStarted:
			started = true
			now := boottimeNs()
			a.mu.Lock()
			c.running, c.visible = true, true
			if pid > 0 {
				c.status.Pid = intp(pid)
			}
			c.status.StartedAtNs = int64p(now)
			a.mu.Unlock()
			c.markStarted()
			ev := Event{Event: "container.started", Name: c.spec.Name, AtNs: int64p(now)}
			if pid > 0 {
				ev.Pid = intp(pid)
			}
			a.ctl.Emit(ev)
		case mFailed:
			out = &outcome{reason: m.Reason, message: m.Message, exitCode: m.ExitCode}
		case mExited:
			out = &outcome{exitCode: m.ExitCode, signal: m.Signal}
		case mExecStarted, mExecFailed:
			a.mu.Lock()
			ch := c.pending[m.ID]
			delete(c.pending, m.ID)
			a.mu.Unlock()
			if ch != nil {
				ch <- execReply{msg: m, pid: pid}
			}
		case mExecExited:
			a.mu.Lock()
			e := a.execs[m.ID]
			a.mu.Unlock()
			if e != nil && e.container == c {
				a.finishExec(e, outcome{exitCode: m.ExitCode, signal: m.Signal, oom: oomKills(c.cgroup) > e.startOOM})
			}
		}
	}
	syscall.Close(c.sock)
	// The shim is gone or going: collect its status.
	var ws syscall.WaitStatus
	select {
	case ws = <-shimExit:
	case <-time.After(5 * time.Second):
		logf("%s: the shim did not exit; killing it", c.spec.Name)
		syscall.Kill(c.shimPid, syscall.SIGKILL)
		ws = <-shimExit
	}
	if out == nil {
		code, sig := waitStatusFields(ws)
		if started {
			out = &outcome{exitCode: code, signal: sig, message: "the container's shim ended unexpectedly"}
			if sig == nil {
				out.exitCode, out.signal = nil, intp(int(syscall.SIGKILL))
			}
		} else {
			out = &outcome{reason: reasonStartFailed, message: fmt.Sprintf("the shim ended before starting the workload (%s)", describeWait(ws))}
		}
	}
	a.finishRunning(c, *out)
}

func describeWait(ws syscall.WaitStatus) string {
	if ws.Signaled() {
		return "signal " + strconv.Itoa(int(ws.Signal()))
	}
	return "exit code " + strconv.Itoa(ws.ExitStatus())
}

// oomKills reads the OOM kill count of a cgroup.
func oomKills(cg string) int64 {
	ev := readKeyed(cg + "/memory.events")
	if ev["oom_group_kill"] > ev["oom_kill"] {
		return ev["oom_group_kill"]
	}
	return ev["oom_kill"]
}

// finishRunning ends a container whose shim has gone.
func (a *Agent) finishRunning(c *Container, out outcome) {
	finished := boottimeNs()
	oom := int64(0)
	if c.cgroupMade {
		oom = oomKills(c.cgroup)
		killCgroup(c.cgroup)
	}
	// Output first: the exit is published after the container's last chunk.
	waitGroupTimeout(&c.outWG, 2*time.Second)
	a.teardown(c)
	if out.reason == "" && out.signal != nil && *out.signal == int(syscall.SIGKILL) && oom > 0 {
		out.reason = reasonOOMKilled
	}
	a.finishAt(c, out, finished, oom > 0 && out.reason == reasonOOMKilled)
}

// finish ends a container that never had a shim.
func (a *Agent) finish(c *Container, out outcome) {
	a.finishAt(c, out, boottimeNs(), false)
}

func (a *Agent) finishAt(c *Container, out outcome, finished int64, oomKilled bool) {
	a.mu.Lock()
	st := &c.status
	st.State = stateExited
	st.FinishedAtNs = int64p(finished)
	st.ExitCode, st.Signal = out.exitCode, out.signal
	st.Message = truncate(out.message, maxMessageLen)
	st.OOMKilled = oomKilled
	st.LastOutputSeq = atomic.LoadUint64(&c.lastSeq)
	st.Reason = out.statusReason()
	c.running, c.exited, c.visible = false, true, true
	pending := c.pending
	c.pending = map[string]chan execReply{}
	var orphans []*Exec
	for _, e := range a.execs {
		if e.container == c && e.status.State == stateRunning && !e.finished {
			orphans = append(orphans, e)
		}
	}
	status := *st
	a.mu.Unlock()
	for id, ch := range pending {
		ch <- execReply{msg: &shimMsg{T: mExecFailed, ID: id, Reason: reasonStartFailed, Message: "the container ended"}}
	}
	for _, e := range orphans {
		a.finishExec(e, outcome{signal: intp(int(syscall.SIGKILL)), message: "the container ended"})
	}
	logf("%s exited: %s", c.spec.Name, describeStatus(status))
	a.ctl.Emit(Event{Event: "container.exited", Name: c.spec.Name, Status: status})
	c.markStarted()
	close(c.done)
}

func describeStatus(s ContainerStatus) string {
	d := s.Reason
	if s.ExitCode != nil {
		d += fmt.Sprintf(" exit %d", *s.ExitCode)
	}
	if s.Signal != nil {
		d += fmt.Sprintf(" signal %d", *s.Signal)
	}
	if s.Message != "" {
		d += ": " + s.Message
	}
	return d
}

func waitGroupTimeout(wg *sync.WaitGroup, d time.Duration) bool {
	ch := make(chan struct{})
	go func() { wg.Wait(); close(ch) }()
	select {
	case <-ch:
		return true
	case <-time.After(d):
		return false
	}
}

// killCgroup SIGKILLs every process of a cgroup and waits (bounded) until it is empty.
func killCgroup(cg string) {
	if err := writeFile(cg+"/cgroup.kill", "1"); err != nil {
		if procs, err := readSmall(cg + "/cgroup.procs"); err == nil {
			for _, f := range strings.Fields(procs) {
				if pid, err := strconv.Atoi(f); err == nil && pid > 1 {
					syscall.Kill(pid, syscall.SIGKILL)
				}
			}
		}
	}
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) {
		procs, err := readSmall(cg + "/cgroup.procs")
		if err != nil || strings.TrimSpace(procs) == "" {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// teardown unmounts the overlay, the writable layer and the image and removes the cgroup.
func (a *Agent) teardown(c *Container) {
	for i := len(c.mounts) - 1; i >= 0; i-- {
		p := c.mounts[i]
		var err error
		for try := 0; try < 20; try++ {
			if err = syscall.Unmount(p, 0); err != syscall.EBUSY {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		if err != nil && err != syscall.EINVAL {
			logf("%s: unmount %s: %v; detaching it", c.spec.Name, p, err)
			syscall.Unmount(p, mntDetach)
		}
	}
	c.mounts = nil
	for _, d := range []string{"rootfs", "rw", "image", ""} {
		syscall.Rmdir(filepath.Join(c.dir, d))
	}
	if c.cgroupMade {
		var err error
		for try := 0; try < 200; try++ {
			if err = syscall.Rmdir(c.cgroup); err == nil || err == syscall.ENOENT {
				err = nil
				break
			}
			if try == 0 {
				killCgroup(c.cgroup)
			}
			time.Sleep(10 * time.Millisecond)
		}
		if err != nil {
			a.warn("%s: remove cgroup %s: %v", c.spec.Name, c.cgroup, err)
		} else {
			c.cgroupMade = false
		}
	}
}

// sendToShim sends a message (with fds) to a container's shim.
func (c *Container) sendToShim(m *shimMsg, oob []byte) error {
	c.sockMu.Lock()
	defer c.sockMu.Unlock()
	if c.sock < 0 {
		return errors.New("no shim")
	}
	return sendShimMsg(c.sock, m, oob)
}

func (a *Agent) lookup(name string) (*Container, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	c := a.containers[name]
	if c == nil {
		return nil, false
	}
	return c, c.running
}

func (a *Agent) signal(name string, sig int) error {
	c, running := a.lookup(name)
	if c == nil {
		return notFound("no container %s", name)
	}
	if !running {
		return conflict("container %s is not running", name)
	}
	if err := c.sendToShim(&shimMsg{T: mSignal, Sig: sig}, nil); err != nil {
		return conflict("container %s is not running", name)
	}
	return nil
}

func (a *Agent) stop(name string, grace time.Duration) error {
	c, _ := a.lookup(name)
	if c == nil {
		return notFound("no container %s", name)
	}
	a.stopContainer(c, grace)
	return nil
}

// stopContainer sends SIGTERM to the workload, then SIGKILLs the whole cgroup after the grace.
func (a *Agent) stopContainer(c *Container, grace time.Duration) {
	a.mu.Lock()
	running := c.running
	a.mu.Unlock()
	if !running {
		return
	}
	if grace > 0 {
		c.sendToShim(&shimMsg{T: mSignal, Sig: int(syscall.SIGTERM)}, nil)
	}
	go func() {
		t := time.NewTimer(grace)
		defer t.Stop()
		select {
		case <-c.done:
			return
		case <-t.C:
		}
		a.protect("kill", func() { a.kill(c) })
	}()
}

// kill SIGKILLs the container's cgroup; the shim reports the workload's death. If the shim itself is
// stuck, it is killed too.
func (a *Agent) kill(c *Container) {
	c.killOnce.Do(func() {
		killCgroup(c.cgroup)
		go func() {
			select {
			case <-c.done:
			case <-time.After(5 * time.Second):
				logf("%s: still not exited 5 s after SIGKILL; killing its shim", c.spec.Name)
				syscall.Kill(c.shimPid, syscall.SIGKILL)
			}
		}()
	})
}

// exec starts a process in a running container and returns its pid. When the process cannot be started
// the answer is an error, and the exec is still recorded as exited (exec.exited says why).
func (a *Agent) exec(x *ExecSpec) (int, error) {
	a.mu.Lock()
	c := a.containers[x.Container]
	if c == nil {
		a.mu.Unlock()
		return 0, notFound("no container %s", x.Container)
	}
	if !c.running {
		a.mu.Unlock()
		return 0, conflict("container %s is not running", x.Container)
	}
	if _, ok := a.execs[x.ExecID]; ok {
		a.mu.Unlock()
		return 0, conflict("exec %s exists", x.ExecID)
	}
	if _, ok := a.containers[x.ExecID]; ok {
		a.mu.Unlock()
		return 0, conflict("%s is the name of a container", x.ExecID)
	}
	e := &Exec{container: c, status: ExecStatus{ExecID: x.ExecID, Container: x.Container, State: stateRunning}}
	ch := make(chan execReply, 1)
	c.pending[x.ExecID] = ch
	a.execs[x.ExecID] = e
	a.execOrder = append(a.execOrder, x.ExecID)
	a.mu.Unlock()
	e.startOOM = oomKills(c.cgroup)

	req := &shimExec{Argv: x.Argv, Env: x.Env, Dir: x.WorkingDir}
	if req.Env == nil {
		req.Env = c.spec.Env
	}
	if req.Dir == "" {
		req.Dir = c.spec.WorkingDir
	}
	if x.User != nil {
		req.UID, req.GID, req.Groups = x.User.UID, x.User.GID, x.User.Groups
	} else {
		req.UID, req.GID, req.Groups = c.spec.UID, c.spec.GID, c.spec.Groups
	}
	fail := func(msg string) (int, error) {
		a.mu.Lock()
		delete(c.pending, x.ExecID)
		a.mu.Unlock()
		a.finishExec(e, outcome{reason: reasonStartFailed, message: msg})
		return 0, internalErr("%s: %s", reasonStartFailed, msg)
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		return fail(err.Error())
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		outR.Close()
		outW.Close()
		return fail(err.Error())
	}
	e.outWG.Add(2)
	go a.protect("output", func() { a.pump(outR, streamStdout, x.ExecID, &e.lastSeq, &e.outWG) })
	go a.protect("output", func() { a.pump(errR, streamStderr, x.ExecID, &e.lastSeq, &e.outWG) })
	err = c.sendToShim(&shimMsg{T: mExec, ID: x.ExecID, Exec: req}, syscall.UnixRights(int(outW.Fd()), int(errW.Fd())))
	outW.Close()
	errW.Close()
	if err != nil {
		fail("the container is not running")
		return 0, conflict("container %s is not running", x.Container)
	}
	var rep execReply
	select {
	case rep = <-ch:
	case <-time.After(30 * time.Second):
		return fail("no answer from the container's shim")
	}
	if rep.msg.T == mExecStarted {
		a.mu.Lock()
		if rep.pid > 0 {
			e.status.Pid = intp(rep.pid)
		}
		a.mu.Unlock()
		return rep.pid, nil
	}
	a.finishExec(e, outcome{reason: rep.msg.Reason, message: rep.msg.Message, exitCode: rep.msg.ExitCode})
	if rep.msg.Message == "the container ended" || rep.msg.Message == "the container is exiting" {
		return 0, conflict("container %s is not running", x.Container)
	}
	return 0, badRequest("%s: %s", rep.msg.Reason, rep.msg.Message)
}

// finishExec claims an exec's end now and publishes it (exec.exited) once its output is read.
func (a *Agent) finishExec(e *Exec, out outcome) {
	a.mu.Lock()
	if e.finished {
		a.mu.Unlock()
		return
	}
	e.finished = true
	a.mu.Unlock()
	go a.protect("exec exit", func() {
		waitGroupTimeout(&e.outWG, time.Second)
		a.mu.Lock()
		st := &e.status
		st.State = stateExited
		st.ExitCode, st.Signal = out.exitCode, out.signal
		st.Message = truncate(out.message, maxMessageLen)
		st.LastOutputSeq = atomic.LoadUint64(&e.lastSeq)
		st.Reason = out.statusReason()
		status := *st
		a.trimExecsLocked()
		a.mu.Unlock()
		a.ctl.Emit(Event{Event: "exec.exited", Status: status})
	})
}

// trimContainersLocked forgets the oldest exited containers while there are maxContainers or more.
func (a *Agent) trimContainersLocked() {
	for i := 0; i < len(a.order) && len(a.containers) >= maxContainers; {
		if c := a.containers[a.order[i]]; c != nil && c.exited {
			delete(a.containers, a.order[i])
			a.order = append(a.order[:i], a.order[i+1:]...)
			continue
		}
		i++
	}
}

// trimExecsLocked forgets the oldest finished execs beyond maxExitedExecs.
func (a *Agent) trimExecsLocked() {
	exited := 0
	for _, id := range a.execOrder {
		if e := a.execs[id]; e != nil && e.status.State == stateExited {
			exited++
		}
	}
	if exited <= maxExitedExecs {
		return
	}
	keep := a.execOrder[:0]
	for _, id := range a.execOrder {
		e := a.execs[id]
		if exited > maxExitedExecs && e != nil && e.status.State == stateExited {
			delete(a.execs, id)
			exited--
			continue
		}
		keep = append(keep, id)
	}
	a.execOrder = keep
}
