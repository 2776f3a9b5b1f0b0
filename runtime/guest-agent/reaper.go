package main

// PID 1 reaps every child (orphans included) from one SIGCHLD-driven loop and hands the statuses of the
// processes it started itself to whoever watches them. A child that exits before it is watched is kept
// in `unclaimed` until Watch asks for it.

import (
	"os"
	"os/signal"
	"sync"
	"syscall"
)

const maxUnclaimed = 4096

// Reaper dispatches wait statuses.
type Reaper struct {
	mu        sync.Mutex
	waiters   map[int]chan syscall.WaitStatus
	unclaimed map[int]syscall.WaitStatus
}

func startReaper() *Reaper {
	r := &Reaper{waiters: map[int]chan syscall.WaitStatus{}, unclaimed: map[int]syscall.WaitStatus{}}
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGCHLD)
	go func() {
		for range ch {
			r.reapAll()
		}
	}()
	return r
}

func (r *Reaper) reapAll() {
	reapExited(r.deliver)
}

// reapExited reaps, without blocking, every child that has exited and hands each wait status to handle.
func reapExited(handle func(pid int, ws syscall.WaitStatus)) {
	for {
		var ws syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
		if err == syscall.EINTR {
			continue
		}
		if err != nil || pid <= 0 {
			return
		}
		handle(pid, ws)
	}
}

func (r *Reaper) deliver(pid int, ws syscall.WaitStatus) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if ch, ok := r.waiters[pid]; ok {
		delete(r.waiters, pid)
		ch <- ws
		return
	}
	if len(r.unclaimed) >= maxUnclaimed {
		// Orphans nobody will ask for; forget them.
		r.unclaimed = map[int]syscall.WaitStatus{}
	}
	r.unclaimed[pid] = ws
}

// Watch returns a channel that receives pid's wait status (once).
func (r *Reaper) Watch(pid int) <-chan syscall.WaitStatus {
	ch := make(chan syscall.WaitStatus, 1)
	r.mu.Lock()
	defer r.mu.Unlock()
	if ws, ok := r.unclaimed[pid]; ok {
		delete(r.unclaimed, pid)
		ch <- ws
		return ch
	}
	r.waiters[pid] = ch
	return ch
}
