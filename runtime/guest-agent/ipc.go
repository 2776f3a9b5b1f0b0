package main

// Agent ↔ shim messages: JSON over a SOCK_SEQPACKET socketpair (one message per packet), with exec
// output fds passed by SCM_RIGHTS and in-container pids translated to guest pids by SCM_CREDENTIALS.

import (
	"encoding/json"
	"errors"
	"syscall"
)

const shimMsgMax = 256 << 10

// shimConfig is what the agent tells a new shim.
type shimConfig struct {
	Name     string   `json:"name"`
	Hostname string   `json:"hostname"`
	Rootfs   string   `json:"rootfs"`
	Cgroup   string   `json:"cgroup"`
	Argv     []string `json:"argv"`
	Env      []string `json:"env"`
	Dir      string   `json:"dir"`
	UID      uint32   `json:"uid"`
	GID      uint32   `json:"gid"`
	Groups   []uint32 `json:"groups"`
}

// shimExec is an exec request to the shim (its stdout and stderr come as SCM_RIGHTS).
type shimExec struct {
	Argv   []string `json:"argv"`
	Env    []string `json:"env"`
	Dir    string   `json:"dir"`
	UID    uint32   `json:"uid"`
	GID    uint32   `json:"gid"`
	Groups []uint32 `json:"groups"`
}

// Message types.
const (
	mConfig = "config" // agent → shim
	mExec   = "exec"
	mSignal = "signal"

	mStarted     = "started" // shim → agent
	mFailed      = "failed"
	mExited      = "exited"
	mExecStarted = "exec-started"
	mExecFailed  = "exec-failed"
	mExecExited  = "exec-exited"
)

type shimMsg struct {
	T        string      `json:"t"`
	ID       string      `json:"id,omitempty"`
	Pid      int         `json:"pid,omitempty"`     // pid inside the container
	CredPid  bool        `json:"credPid,omitempty"` // SCM_CREDENTIALS carries that process's pid
	ExitCode *int        `json:"exitCode,omitempty"`
	Signal   *int        `json:"signal,omitempty"`
	Reason   string      `json:"reason,omitempty"`
	Message  string      `json:"message,omitempty"`
	Sig      int         `json:"sig,omitempty"`
	Config   *shimConfig `json:"config,omitempty"`
	Exec     *shimExec   `json:"exec,omitempty"`
}

var errPeerClosed = errors.New("peer closed")

func sendShimMsg(fd int, m *shimMsg, oob []byte) error {
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	for {
		err = syscall.Sendmsg(fd, b, oob, nil, 0)
		if err != syscall.EINTR {
			return err
		}
	}
}

type received struct {
	msg  *shimMsg
	fds  []int
	cred *syscall.Ucred
}

// recvShimMsg reads one message (blocking). Received fds are close-on-exec.
func recvShimMsg(fd int, buf, oob []byte) (received, error) {
	var r received
	for {
		n, oobn, flags, _, err := syscall.Recvmsg(fd, buf, oob, syscall.MSG_CMSG_CLOEXEC)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return r, err
		}
		if oobn > 0 {
			if cms, err := syscall.ParseSocketControlMessage(oob[:oobn]); err == nil {
				for i := range cms {
					switch {
					case cms[i].Header.Level == syscall.SOL_SOCKET && cms[i].Header.Type == syscall.SCM_RIGHTS:
						if fds, err := syscall.ParseUnixRights(&cms[i]); err == nil {
							r.fds = append(r.fds, fds...)
						}
					case cms[i].Header.Level == syscall.SOL_SOCKET && cms[i].Header.Type == syscall.SCM_CREDENTIALS:
						if c, err := syscall.ParseUnixCredentials(&cms[i]); err == nil {
							r.cred = c
						}
					}
				}
			}
		}
		if n == 0 && oobn == 0 {
			return r, errPeerClosed
		}
		if flags&(syscall.MSG_TRUNC|syscall.MSG_CTRUNC) != 0 {
			closeAll(r.fds)
			return received{}, errors.New("truncated message")
		}
		var m shimMsg
		if err := json.Unmarshal(buf[:n], &m); err != nil {
			closeAll(r.fds)
			return received{}, err
		}
		r.msg = &m
		return r, nil
	}
}

func closeAll(fds []int) {
	for _, fd := range fds {
		syscall.Close(fd)
	}
}

func newOOB() []byte {
	return make([]byte, syscall.CmsgSpace(8*4)+syscall.CmsgSpace(syscall.SizeofUcred))
}
