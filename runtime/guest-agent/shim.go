package main

// The per-container shim: this binary started as `/proc/self/exe shim` by the agent with new mount, PID,
// UTS and IPC namespaces. It is PID 1 of the container's PID namespace. It builds the container's root
// (pivot_root into the overlay, /proc, a minimal /dev, read-only /sys), drops dangerous capabilities from
// the bounding set, starts the workload and exec processes inside the container's cgroup, reaps
// everything, and reports to the agent over fd 3 (a SOCK_SEQPACKET socket).
//
// The shim itself is never in the container's cgroup, so its own threads and memory do not count against
// the tenant's pids/memory limits, and it survives an OOM group kill or cgroup.kill to report the
// workload's real exit status. Go 1.19 cannot place a child in a cgroup between fork and exec, so each
// process is started traced (PTRACE_TRACEME): it stops right after execve, before running any of its
// own instructions, is moved into the container's cgroup, and is then detached.

import (
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path"
	"runtime"
	"strconv"
	"syscall"
)

const shimSock = 3
const oldRootDir = ".caas-oldroot"

// Capabilities kept in the bounding set (Docker's default set without CAP_MKNOD); all others are
// dropped, so a root workload cannot mount, load modules, reboot, use raw I/O, trace, and so on.
var keptCaps = map[int]bool{
	0:  true, // CHOWN
	1:  true, // DAC_OVERRIDE
	3:  true, // FOWNER
	4:  true, // FSETID
	5:  true, // KILL
	6:  true, // SETGID
	7:  true, // SETUID
	8:  true, // SETPCAP
	10: true, // NET_BIND_SERVICE
	13: true, // NET_RAW
	18: true, // SYS_CHROOT
	29: true, // AUDIT_WRITE
	31: true, // SETFCAP
}

type shim struct {
	cfg         *shimConfig
	cgFd        int // the container cgroup's cgroup.procs
	devnull     *os.File
	workload    int // pid in the container, 0 = not started
	workloadWS  syscall.WaitStatus
	workloadEnd bool
	execs       map[int]string // pid → exec id
	st          *stamps
	tid         int // the thread every process is forked from (its bounding set is the dropped one)
}

func shimMain() {
	logPrefix = "caas-shim: "
	st := newStamps()
	st.parts = append(st.parts, fmt.Sprintf("main at %.1f", ms(st.last)))
	// Every fork happens on this goroutine's thread: the tracer of a PTRACE_TRACEME child is the thread
	// that forked it, and only that thread may detach it.
	runtime.LockOSThread()
	syscall.CloseOnExec(shimSock) // never leak the agent socket into the container
	if fd, err := syscall.Open("/dev/console", syscall.O_WRONLY|syscall.O_NOCTTY|syscall.O_CLOEXEC, 0); err == nil {
		consoleFd = fd
	}
	// Signals sent to the shim from inside the container are ignored (PID 1 only receives handled
	// signals); the agent asks for signals over the socket. Notify rather than Ignore so the workload
	// starts with default dispositions.
	sink := make(chan os.Signal, 16)
	signal.Notify(sink, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP, syscall.SIGQUIT, syscall.SIGUSR1,
		syscall.SIGUSR2, syscall.SIGALRM, syscall.SIGPIPE, syscall.SIGTSTP, syscall.SIGTTIN, syscall.SIGTTOU,
		syscall.SIGWINCH, syscall.SIGVTALRM, syscall.SIGPROF, syscall.SIGXCPU, syscall.SIGXFSZ)
	go func() {
		for range sink {
		}
	}()
	sigchld := make(chan os.Signal, 1)
	signal.Notify(sigchld, syscall.SIGCHLD)

	buf := make([]byte, shimMsgMax)
	oob := newOOB()
	first, err := recvShimMsg(shimSock, buf, oob)
	if err != nil || first.msg.T != mConfig || first.msg.Config == nil {
		logf("no configuration from the agent: %v", err)
		os.Exit(2)
	}
	closeAll(first.fds)
	s := &shim{cfg: first.msg.Config, execs: map[int]string{}, cgFd: -1}
	logPrefix = "caas-shim[" + s.cfg.Name + "]: "
	st.mark("config")
	s.st = st

	if err := s.setup(); err != nil {
		s.send(&shimMsg{T: mFailed, Reason: reasonStartFailed, Message: err.Error()}, 0)
		os.Exit(1)
	}
	pid, early, reason, code, msg := s.spawn(s.cfg.Argv, s.cfg.Env, s.cfg.Dir, s.cfg.UID, s.cfg.GID, s.cfg.Groups,
		[]*os.File{s.devnull, os.Stdout, os.Stderr}, func(pid int) {
			s.workload = pid
			s.send(&shimMsg{T: mStarted}, pid)
			st.mark("sent")
		})
	if pid == 0 {
		m := &shimMsg{T: mFailed, Reason: reason, Message: msg}
		if code != 0 {
			m.ExitCode = intp(code)
		}
		s.send(m, 0)
		os.Exit(1)
	}
	st.mark("running")
	logf("start (ms): %s", st)
	if early != nil {
		s.reapedOne(pid, *early)
		s.finishIfDone()
	}

	msgs := make(chan received, 16)
	go func() {
		defer close(msgs)
		for {
			r, err := recvShimMsg(shimSock, buf, oob)
			if err != nil {
				if err == errPeerClosed || errnoOf(err) != 0 {
					return
				}
				logf("bad message from the agent: %v", err)
				continue
			}
			msgs <- r
		}
	}()

	for {
		select {
		case <-sigchld:
			s.reap()
		case r, ok := <-msgs:
			if !ok {
				// The agent is gone or gave up on us: end the container.
				logf("agent socket closed; killing the container")
				syscall.Kill(-1, syscall.SIGKILL)
				if s.workload != 0 && !s.workloadEnd {
					syscall.Kill(s.workload, syscall.SIGKILL)
				}
				msgs = nil
				continue
			}
			s.handle(r)
		}
	}
}

func (s *shim) send(m *shimMsg, pid int) {
	if pid > 0 {
		m.Pid = pid
		m.CredPid = true
		oob := syscall.UnixCredentials(&syscall.Ucred{Pid: int32(pid), Uid: 0, Gid: 0})
		if err := sendShimMsg(shimSock, m, oob); err == nil {
			return
		}
		m.CredPid = false
	}
	if err := sendShimMsg(shimSock, m, nil); err != nil {
		logf("report %s: %v", m.T, err)
	}
}

func (s *shim) handle(r received) {
	m := r.msg
	switch m.T {
	case mExec:
		if m.Exec == nil || len(r.fds) != 2 {
			closeAll(r.fds)
			s.send(&shimMsg{T: mExecFailed, ID: m.ID, Reason: reasonStartFailed, Message: "malformed exec request"}, 0)
			return
		}
		if s.workloadEnd {
			closeAll(r.fds)
			s.send(&shimMsg{T: mExecFailed, ID: m.ID, Reason: reasonStartFailed, Message: "the container is exiting"}, 0)
			return
		}
		out := os.NewFile(uintptr(r.fds[0]), "stdout")
		errf := os.NewFile(uintptr(r.fds[1]), "stderr")
		e := m.Exec
		pid, early, reason, code, msg := s.spawn(e.Argv, e.Env, e.Dir, e.UID, e.GID, e.Groups, []*os.File{s.devnull, out, errf}, func(pid int) {
			s.execs[pid] = m.ID
			s.send(&shimMsg{T: mExecStarted, ID: m.ID}, pid)
		})
		out.Close() // the only close of the received fds: a second one could hit a reused number
		errf.Close()
		if pid == 0 {
			fm := &shimMsg{T: mExecFailed, ID: m.ID, Reason: reason, Message: msg}
			if code != 0 {
				fm.ExitCode = intp(code)
			}
			s.send(fm, 0)
			return
		}
		if early != nil {
			s.reapedOne(pid, *early)
		}
	case mSignal:
		closeAll(r.fds)
		if s.workload != 0 && !s.workloadEnd && m.Sig >= 1 && m.Sig <= 64 {
			if err := syscall.Kill(s.workload, syscall.Signal(m.Sig)); err != nil {
				logf("signal %d: %v", m.Sig, err)
			}
		}
	default:
		closeAll(r.fds)
	}
}

func (s *shim) reapedOne(pid int, ws syscall.WaitStatus) {
	if pid == s.workload && !s.workloadEnd {
		s.workloadEnd = true
		s.workloadWS = ws
		return
	}
	if id, ok := s.execs[pid]; ok {
		delete(s.execs, pid)
		code, sig := waitStatusFields(ws)
		s.send(&shimMsg{T: mExecExited, ID: id, ExitCode: code, Signal: sig}, 0)
	}
}

func (s *shim) reap() {
	reapExited(s.reapedOne)
	s.finishIfDone()
}

// finishIfDone ends the shim once the workload has exited.
func (s *shim) finishIfDone() {
	if !s.workloadEnd {
		return
	}
	// The workload is gone: end everything else in the namespace, reap it, report, exit.
	for {
		syscall.Kill(-1, syscall.SIGKILL)
		var ws syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &ws, 0, nil)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			break
		}
		s.reapedOne(pid, ws)
	}
	code, sig := waitStatusFields(s.workloadWS)
	s.send(&shimMsg{T: mExited, ExitCode: code, Signal: sig}, 0)
	os.Exit(0)
}

// spawn resolves and starts a process in the container's cgroup. pid 0 means it did not start, with a
// reason, an exit code (127/126 or 0) and a message. early is set when the process died before it was
// detached (its status was collected here and must be dispatched by the caller). started is called once
// with the pid when pid is not 0: when the process is in the cgroup, just before it is let run (so the
// report does not queue behind the workload's first instructions on a single CPU), or before spawn
// returns if the process died first.
func (s *shim) spawn(argv, env []string, dir string, uid, gid uint32, groups []uint32, files []*os.File, started func(pid int)) (pid int, early *syscall.WaitStatus, reason string, code int, msg string) {
	// The capability bounding set was dropped on this thread only (setup): children must be forked here.
	if syscall.Gettid() != s.tid {
		return 0, nil, reasonStartFailed, 0, "internal error: spawn off the shim's main thread"
	}
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		msg := fmt.Sprintf("working directory %s is not a directory", dir)
		if err != nil {
			msg = fmt.Sprintf("working directory %s: %v", dir, errors.Unwrap(err))
		}
		return 0, nil, reasonStartFailed, 0, msg
	}
	p, err := resolveCommand(argv[0], pathFromEnv(env), dir, osStat)
	s.mark("resolve")
	if err != nil {
		if errors.Is(err, errCommandNotFound) {
			return 0, nil, reasonCommandNotFound, 127, err.Error()
		}
		return 0, nil, reasonPermissionDenied, 126, err.Error()
	}
	if groups == nil {
		groups = []uint32{}
	}
	proc, err := os.StartProcess(p, argv, &os.ProcAttr{
		Dir:   dir,
		Env:   env,
		Files: files,
		Sys: &syscall.SysProcAttr{
			Credential: &syscall.Credential{Uid: uid, Gid: gid, Groups: groups},
			Setsid:     true,
			Ptrace:     true,
		},
	})
	if err != nil {
		switch errnoOf(err) {
		case syscall.ENOENT:
			return 0, nil, reasonCommandNotFound, 127, fmt.Sprintf("%s: %v (a missing interpreter or library?)", p, errnoOf(err))
		case syscall.EACCES, syscall.EPERM, syscall.ENOEXEC, syscall.EISDIR, syscall.ETXTBSY:
			return 0, nil, reasonPermissionDenied, 126, fmt.Sprintf("%s: %v", p, errnoOf(err))
		}
		return 0, nil, reasonStartFailed, 0, fmt.Sprintf("start %s: %v", p, err)
	}
	pid = proc.Pid
	proc.Release()
	s.mark("fork")
	// The child stops with SIGTRAP right after its execve.
	var ws syscall.WaitStatus
	for {
		_, err = syscall.Wait4(pid, &ws, 0, nil)
		if err != syscall.EINTR {
			break
		}
	}
	if err != nil || !ws.Stopped() {
		// Killed before it ran anything of its own (it was never in the cgroup, so it used nothing).
		started(pid)
		return pid, &ws, "", 0, ""
	}
	s.mark("exec-stop")
	if _, err := syscall.Write(s.cgFd, []byte(strconv.Itoa(pid))); err != nil {
		syscall.Kill(pid, syscall.SIGKILL)
		syscall.PtraceDetach(pid)
		for {
			if _, err := syscall.Wait4(pid, &ws, 0, nil); err != syscall.EINTR {
				break
			}
		}
		return 0, nil, reasonStartFailed, 0, fmt.Sprintf("join cgroup %s: %v", s.cfg.Cgroup, err)
	}
	s.mark("cgroup")
	started(pid)
	// A stop for another signal (sent before the execve) is passed on rather than swallowed.
	sig := uintptr(0)
	if ws.StopSignal() != syscall.SIGTRAP {
		sig = uintptr(ws.StopSignal())
	}
	if _, _, e := syscall.Syscall6(syscall.SYS_PTRACE, syscall.PTRACE_DETACH, uintptr(pid), 0, sig, 0, 0); e != 0 {
		logf("detach %d: %v", pid, e)
	}
	s.mark("detach")
	return pid, nil, "", 0, ""
}

// setup builds the container's root and leaves the shim in it.
func (s *shim) setup() error {
	c := s.cfg
	var err error
	if s.cgFd, err = syscall.Open(c.Cgroup+"/cgroup.procs", syscall.O_WRONLY|syscall.O_CLOEXEC, 0); err != nil {
		return fmt.Errorf("open cgroup %s: %w", c.Cgroup, err)
	}
	if err := mount("", "/", "", syscall.MS_REC|syscall.MS_PRIVATE, ""); err != nil {
		return err
	}
	s.mark("open-cg+private")
	if err := mount(c.Rootfs, c.Rootfs, "", syscall.MS_BIND|syscall.MS_REC, ""); err != nil {
		return err
	}
	if err := syscall.Chdir(c.Rootfs); err != nil {
		return fmt.Errorf("chdir %s: %w", c.Rootfs, err)
	}
	// The old root goes under a directory of the new root; nothing runs in the container yet, so
	// checking the image's entry (a symlink or file would be replaced) is race-free.
	if fi, err := os.Lstat(oldRootDir); err == nil && !fi.IsDir() {
		os.Remove(oldRootDir)
	}
	if err := os.Mkdir(oldRootDir, 0o700); err != nil && !os.IsExist(err) {
		return fmt.Errorf("mkdir %s: %w", oldRootDir, err)
	}
	if err := syscall.PivotRoot(".", oldRootDir); err != nil {
		return fmt.Errorf("pivot_root: %w", err)
	}
	if err := syscall.Chdir("/"); err != nil {
		return err
	}
	s.mark("pivot")
	old := "/" + oldRootDir
	// From here on every path resolves inside the container's root (symlinks in the image included).
	if err := mkdirIn("/proc", 0o555); err != nil {
		return err
	}
	if err := mount("proc", "/proc", "proc", syscall.MS_NOSUID|syscall.MS_NODEV|syscall.MS_NOEXEC, ""); err != nil {
		return err
	}
	s.mark("proc")
	if err := s.setupDev(old); err != nil {
		return err
	}
	s.mark("dev")
	if err := mkdirIn("/sys", 0o555); err == nil {
		if err := mount("sysfs", "/sys", "sysfs", syscall.MS_RDONLY|syscall.MS_NOSUID|syscall.MS_NODEV|syscall.MS_NOEXEC, ""); err != nil {
			logf("%v", err)
		}
	}
	if err := syscall.Unmount(old, mntDetach); err != nil {
		return fmt.Errorf("unmount the old root: %w", err)
	}
	syscall.Rmdir(old)
	s.mark("sys+umount-old")
	maskProc()
	s.mark("maskproc")
	if err := syscall.Sethostname([]byte(c.Hostname)); err != nil {
		return fmt.Errorf("sethostname: %w", err)
	}
	if s.devnull, err = os.OpenFile("/dev/null", os.O_RDWR, 0); err != nil {
		return err
	}
	s.tid = syscall.Gettid()
	err = dropCaps()
	s.mark("caps")
	return err
}

func (s *shim) mark(what string) {
	if s.st != nil {
		s.st.mark(what)
	}
}

func mkdirIn(p string, mode os.FileMode) error {
	if err := os.MkdirAll(p, mode); err != nil {
		return fmt.Errorf("mkdir %s: %w", p, err)
	}
	return nil
}

// setupDev mounts a tmpfs /dev holding bind mounts of a few device nodes from the guest's devtmpfs.
func (s *shim) setupDev(old string) error {
	if err := mkdirIn("/dev", 0o755); err != nil {
		return err
	}
	if err := mount("tmpfs", "/dev", "tmpfs", syscall.MS_NOSUID|syscall.MS_NOEXEC, "mode=755,size=65536k,nr_inodes=4096"); err != nil {
		return err
	}
	for _, d := range []string{"null", "zero", "full", "random", "urandom", "tty"} {
		target := "/dev/" + d
		f, err := os.OpenFile(target, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o666)
		if err != nil {
			return fmt.Errorf("create %s: %w", target, err)
		}
		f.Close()
		if err := mount(path.Join(old, "dev", d), target, "", syscall.MS_BIND, ""); err != nil {
			return err
		}
	}
	if err := os.Mkdir("/dev/pts", 0o755); err == nil {
		if err := mount("devpts", "/dev/pts", "devpts", syscall.MS_NOSUID|syscall.MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620"); err == nil {
			os.Symlink("pts/ptmx", "/dev/ptmx")
		} else {
			logf("%v", err)
		}
	}
	if err := os.Mkdir("/dev/shm", 0o1777); err == nil {
		if err := mount("shm", "/dev/shm", "tmpfs", syscall.MS_NOSUID|syscall.MS_NODEV, "mode=1777"); err != nil {
			logf("%v", err)
		}
	}
	for name, target := range map[string]string{"fd": "/proc/self/fd", "stdin": "/proc/self/fd/0",
		"stdout": "/proc/self/fd/1", "stderr": "/proc/self/fd/2"} {
		os.Symlink(target, "/dev/"+name)
	}
	return nil
}

// maskProc hides or write-protects the parts of /proc that reach the whole VM (best effort).
func maskProc() {
	for _, p := range []string{"/proc/kcore", "/proc/sysrq-trigger", "/proc/timer_list", "/proc/sched_debug", "/proc/keys"} {
		if _, err := os.Lstat(p); err == nil {
			if err := mount("/dev/null", p, "", syscall.MS_BIND, ""); err != nil {
				logf("%v", err)
			}
		}
	}
	for _, p := range []string{"/proc/sys", "/proc/irq", "/proc/bus", "/proc/fs"} {
		if _, err := os.Lstat(p); err != nil {
			continue
		}
		if err := mount(p, p, "", syscall.MS_BIND|syscall.MS_REC, ""); err != nil {
			logf("%v", err)
			continue
		}
		if err := mount(p, p, "", syscall.MS_BIND|syscall.MS_REMOUNT|syscall.MS_RDONLY|syscall.MS_NOSUID|syscall.MS_NODEV|syscall.MS_NOEXEC, ""); err != nil {
			logf("%v", err)
		}
	}
}

// dropCaps removes every capability but keptCaps from the bounding set of the calling thread: the one
// thread (runtime.LockOSThread in shimMain) that forks every process of the container, which inherit it.
// The shim's other threads keep theirs, but never start a process (spawn checks its thread); dropping on
// all threads (AllThreadsSyscall: a stop-the-world and a signal per thread and capability) cost ≈35 ms of
// each container start under emulation.
func dropCaps() error {
	for c := 0; c < 64; c++ {
		if keptCaps[c] {
			continue
		}
		_, _, e := syscall.RawSyscall(syscall.SYS_PRCTL, prCapbsetDrop, uintptr(c), 0)
		if e == syscall.EINVAL {
			break // beyond the kernel's last capability
		}
		if e != 0 {
			return fmt.Errorf("drop capability %d: %v", c, e)
		}
	}
	return nil
}
