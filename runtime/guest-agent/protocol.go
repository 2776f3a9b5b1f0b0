package main

// The Go side of libs/guest-protocol/PROTOCOL.md: frames and the JSON message shapes.
// Pure code (no I/O) so it is unit-tested without a VM.

import (
	"encoding/binary"
	"errors"
	"fmt"
)

const (
	protocolVersion = 1
	agentVersion    = "0.1.0"

	frameMagic0  = 0xCA
	frameMagic1  = 0x5A
	frameVersion = 1
	headerLen    = 8

	kindJSON   = 1
	kindChunk  = 2
	kindGap    = 3
	kindReplay = 4

	maxJSONPayload = 65536
	maxOutFrame    = 32768 // a whole kind 2, 3 or 4 frame
	maxChunkData   = 16384
	maxSourceLen   = 128

	streamStdout = 1
	streamStderr = 2
)

// encodeFrame returns header+payload as one slice (written with one write call).
func encodeFrame(kind byte, payload []byte) []byte {
	b := make([]byte, headerLen+len(payload))
	b[0], b[1], b[2], b[3] = frameMagic0, frameMagic1, frameVersion, kind
	binary.BigEndian.PutUint32(b[4:8], uint32(len(payload)))
	copy(b[headerLen:], payload)
	return b
}

// encodeJSONFrame frames a JSON payload; it fails when the payload is over the limit.
func encodeJSONFrame(payload []byte) ([]byte, error) {
	if len(payload) > maxJSONPayload {
		return nil, fmt.Errorf("json payload of %d bytes is over the %d byte limit", len(payload), maxJSONPayload)
	}
	return encodeFrame(kindJSON, payload), nil
}

// encodeChunkFrame builds a kind 2 frame. source must be 1..128 bytes and data 1..16384 bytes.
func encodeChunkFrame(seq uint64, stream byte, source string, data []byte) []byte {
	p := make([]byte, headerLen+10+len(source)+len(data))
	p[0], p[1], p[2], p[3] = frameMagic0, frameMagic1, frameVersion, kindChunk
	binary.BigEndian.PutUint32(p[4:8], uint32(len(p)-headerLen))
	q := p[headerLen:]
	binary.BigEndian.PutUint64(q[0:8], seq)
	q[8] = stream
	q[9] = byte(len(source))
	copy(q[10:], source)
	copy(q[10+len(source):], data)
	return p
}

func encodeGapFrame(from, to uint64) []byte {
	var q [16]byte
	binary.BigEndian.PutUint64(q[0:8], from)
	binary.BigEndian.PutUint64(q[8:16], to)
	return encodeFrame(kindGap, q[:])
}

func encodeReplayFrame(from uint64) []byte {
	var q [8]byte
	binary.BigEndian.PutUint64(q[:], from)
	return encodeFrame(kindReplay, q[:])
}

// Frame is one decoded frame.
type Frame struct {
	Kind    byte
	Payload []byte
}

// errNeedMore means the buffer holds no complete frame yet.
var errNeedMore = errors.New("need more input")

// DecodeError is a framing error: the stream can no longer be trusted.
type DecodeError struct{ Reason string }

func (e *DecodeError) Error() string { return "frame decode: " + e.Reason }

// Decoder decodes frames of the host→guest stream on caas.ctl (kind 1 only). It never buffers more than
// one maximal frame plus the last read. After a DecodeError the caller calls Resync: the decoder then
// drops input until it finds a frame that is a `hello` request (the host reconnects and says hello).
type Decoder struct {
	buf        []byte
	resync     bool
	isHello    func(payload []byte) bool
	maxPayload int
}

func newDecoder(isHello func([]byte) bool) *Decoder {
	return &Decoder{isHello: isHello, maxPayload: maxJSONPayload}
}

// Feed appends input read from the port.
func (d *Decoder) Feed(p []byte) { d.buf = append(d.buf, p...) }

// Reset drops everything buffered and leaves resync mode (the host disconnected: a new one starts clean).
func (d *Decoder) Reset() { d.buf = d.buf[:0]; d.resync = false }

// Resync drops the buffered input and waits for the next hello.
func (d *Decoder) Resync() { d.buf = d.buf[:0]; d.resync = true }

// Resyncing reports whether the decoder is waiting for a hello after an error.
func (d *Decoder) Resyncing() bool { return d.resync }

// Buffered is the number of bytes held.
func (d *Decoder) Buffered() int { return len(d.buf) }

func (d *Decoder) consume(n int) {
	rest := copy(d.buf, d.buf[n:])
	d.buf = d.buf[:rest]
}

// checkHeader validates a header at the start of b (len(b) >= headerLen).
func (d *Decoder) checkHeader(b []byte) (int, error) {
	if b[0] != frameMagic0 || b[1] != frameMagic1 {
		return 0, &DecodeError{fmt.Sprintf("bad magic %#02x%02x", b[0], b[1])}
	}
	if b[2] != frameVersion {
		return 0, &DecodeError{fmt.Sprintf("bad frame version %d", b[2])}
	}
	if b[3] != kindJSON {
		return 0, &DecodeError{fmt.Sprintf("kind %d is not allowed host to guest", b[3])}
	}
	n := binary.BigEndian.Uint32(b[4:8])
	if n == 0 || int64(n) > int64(d.maxPayload) {
		return 0, &DecodeError{fmt.Sprintf("bad payload length %d", n)}
	}
	return int(n), nil
}

// Next returns the next complete frame, errNeedMore, or a *DecodeError.
func (d *Decoder) Next() (Frame, error) {
	if d.resync {
		return d.nextResync()
	}
	if len(d.buf) < headerLen {
		// Reject a bad magic, version or kind as early as possible.
		want := [4]byte{frameMagic0, frameMagic1, frameVersion, kindJSON}
		for i := 0; i < len(d.buf) && i < 4; i++ {
			if d.buf[i] != want[i] {
				return Frame{}, &DecodeError{fmt.Sprintf("bad header byte %d: %#02x", i, d.buf[i])}
			}
		}
		return Frame{}, errNeedMore
	}
	n, err := d.checkHeader(d.buf)
	if err != nil {
		return Frame{}, err
	}
	if len(d.buf) < headerLen+n {
		return Frame{}, errNeedMore
	}
	payload := append([]byte(nil), d.buf[headerLen:headerLen+n]...)
	d.consume(headerLen + n)
	return Frame{Kind: kindJSON, Payload: payload}, nil
}

// nextResync scans for a well-formed frame whose payload is a hello; everything before it is dropped.
func (d *Decoder) nextResync() (Frame, error) {
	for {
		i := 0
		for i < len(d.buf) && d.buf[i] != frameMagic0 {
			i++
		}
		d.consume(i)
		if len(d.buf) < headerLen {
			if len(d.buf) >= 2 && d.buf[1] != frameMagic1 {
				d.consume(1)
				continue
			}
			return Frame{}, errNeedMore
		}
		n, err := d.checkHeader(d.buf)
		if err != nil {
			d.consume(1)
			continue
		}
		if len(d.buf) < headerLen+n {
			return Frame{}, errNeedMore
		}
		payload := d.buf[headerLen : headerLen+n]
		if d.isHello != nil && d.isHello(payload) {
			p := append([]byte(nil), payload...)
			d.consume(headerLen + n)
			d.resync = false
			return Frame{Kind: kindJSON, Payload: p}, nil
		}
		d.consume(1)
	}
}

// decodeOutFrame decodes one guest→host output frame (kinds 2–4) from b; used by tests and tools.
// It returns the frame and the number of bytes used.
func decodeOutFrame(b []byte) (Frame, int, error) {
	if len(b) < headerLen {
		return Frame{}, 0, errNeedMore
	}
	if b[0] != frameMagic0 || b[1] != frameMagic1 || b[2] != frameVersion {
		return Frame{}, 0, &DecodeError{"bad magic or version"}
	}
	n := int(binary.BigEndian.Uint32(b[4:8]))
	if headerLen+n > maxOutFrame {
		return Frame{}, 0, &DecodeError{"frame too large"}
	}
	switch b[3] {
	case kindChunk:
		if n < 11 {
			return Frame{}, 0, &DecodeError{"chunk too short"}
		}
	case kindGap:
		if n != 16 {
			return Frame{}, 0, &DecodeError{"bad gap length"}
		}
	case kindReplay:
		if n != 8 {
			return Frame{}, 0, &DecodeError{"bad replay length"}
		}
	default:
		return Frame{}, 0, &DecodeError{fmt.Sprintf("bad kind %d", b[3])}
	}
	if len(b) < headerLen+n {
		return Frame{}, 0, errNeedMore
	}
	return Frame{Kind: b[3], Payload: b[headerLen : headerLen+n]}, headerLen + n, nil
}

// ---- JSON shapes ----

// UserSpec is the user a process runs as.
type UserSpec struct {
	UID            *int64  `json:"uid"`
	GID            *int64  `json:"gid"`
	AdditionalGids []int64 `json:"additionalGids"`
}

// Limits are the container's cgroup limits; nil = none.
type Limits struct {
	MemoryBytes *int64 `json:"memoryBytes"`
	CPUMillis   *int64 `json:"cpuMillis"`
	Pids        *int64 `json:"pids"`
}

// ContainerSpec is the `run` request's container.
type ContainerSpec struct {
	Name               *string   `json:"name"`
	Disk               *string   `json:"disk"`
	FsType             *string   `json:"fsType"`
	Argv               []string  `json:"argv"`
	Env                []string  `json:"env"`
	WorkingDir         *string   `json:"workingDir"`
	User               *UserSpec `json:"user"`
	Hostname           *string   `json:"hostname"`
	Limits             *Limits   `json:"limits"`
	WritableLayerBytes *int64    `json:"writableLayerBytes"`
}

// ContainerStatus as in the contract.
type ContainerStatus struct {
	Name          string `json:"name"`
	State         string `json:"state"`
	Pid           *int   `json:"pid,omitempty"`
	StartedAtNs   *int64 `json:"startedAtNs,omitempty"`
	FinishedAtNs  *int64 `json:"finishedAtNs,omitempty"`
	ExitCode      *int   `json:"exitCode,omitempty"`
	Signal        *int   `json:"signal,omitempty"`
	Reason        string `json:"reason,omitempty"`
	Message       string `json:"message,omitempty"`
	OOMKilled     bool   `json:"oomKilled"`
	LastOutputSeq uint64 `json:"lastOutputSeq"`
}

// ExecStatus as in the contract.
type ExecStatus struct {
	ExecID        string `json:"execId"`
	Container     string `json:"container"`
	State         string `json:"state"`
	Pid           *int   `json:"pid,omitempty"`
	ExitCode      *int   `json:"exitCode,omitempty"`
	Signal        *int   `json:"signal,omitempty"`
	Reason        string `json:"reason,omitempty"`
	Message       string `json:"message,omitempty"`
	LastOutputSeq uint64 `json:"lastOutputSeq"`
}

// Timings of the hello result (CLOCK_BOOTTIME ns).
type Timings struct {
	AgentStartNs int64 `json:"agentStartNs"`
	ReadyNs      int64 `json:"readyNs"`
	NowNs        int64 `json:"nowNs"`
}

// HelloResult is the `hello` result.
type HelloResult struct {
	Protocol     int               `json:"protocol"`
	AgentVersion string            `json:"agentVersion"`
	BootID       string            `json:"bootId"`
	OutputSeq    uint64            `json:"outputSeq"`
	EventSeq     uint64            `json:"eventSeq"`
	Containers   []ContainerStatus `json:"containers"`
	Execs        []ExecStatus      `json:"execs"`
	Timings      Timings           `json:"timings"`
}

// ContainerStats is one entry of Stats.containers.
type ContainerStats struct {
	Name             string `json:"name"`
	CPUUsageUs       int64  `json:"cpuUsageUs"`
	MemoryBytes      int64  `json:"memoryBytes"`
	MemoryLimitBytes *int64 `json:"memoryLimitBytes,omitempty"`
	Pids             int64  `json:"pids"`
	OOMKills         int64  `json:"oomKills"`
}

// GuestStats is Stats.guest.
type GuestStats struct {
	MemTotalBytes     int64 `json:"memTotalBytes"`
	MemAvailableBytes int64 `json:"memAvailableBytes"`
	UptimeNs          int64 `json:"uptimeNs"`
}

// OutputStats is Stats.output.
type OutputStats struct {
	DroppedChunks uint64 `json:"droppedChunks"`
}

// Stats is the `stats` result.
type Stats struct {
	Containers []ContainerStats `json:"containers"`
	Guest      GuestStats       `json:"guest"`
	Output     OutputStats      `json:"output"`
}

// ErrorBody is a failed response's error.
type ErrorBody struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// Response to a request.
type Response struct {
	ID     uint64      `json:"id"`
	OK     bool        `json:"ok"`
	Result interface{} `json:"result,omitempty"`
	Error  *ErrorBody  `json:"error,omitempty"`
}

// Event is a guest→host event; fields are set per event kind.
type Event struct {
	Event   string      `json:"event"`
	Seq     uint64      `json:"seq"`
	Name    string      `json:"name,omitempty"`
	Pid     *int        `json:"pid,omitempty"`
	AtNs    *int64      `json:"atNs,omitempty"`
	Status  interface{} `json:"status,omitempty"`
	Message string      `json:"message,omitempty"`
}

// Error codes.
const (
	codeBadRequest  = "BAD_REQUEST"
	codeNotFound    = "NOT_FOUND"
	codeConflict    = "CONFLICT"
	codeUnsupported = "UNSUPPORTED_VERSION"
	codeInternal    = "INTERNAL"
)

// reqError is an error carrying a response code.
type reqError struct {
	code string
	msg  string
}

func (e *reqError) Error() string { return e.code + ": " + e.msg }

func badRequest(format string, a ...interface{}) error {
	return &reqError{codeBadRequest, fmt.Sprintf(format, a...)}
}
func notFound(format string, a ...interface{}) error {
	return &reqError{codeNotFound, fmt.Sprintf(format, a...)}
}
func conflict(format string, a ...interface{}) error {
	return &reqError{codeConflict, fmt.Sprintf(format, a...)}
}
func internalErr(format string, a ...interface{}) error {
	return &reqError{codeInternal, fmt.Sprintf(format, a...)}
}

// Container and exec states and reasons.
const (
	stateRunning = "running"
	stateExited  = "exited"

	reasonCompleted        = "Completed"
	reasonError            = "Error"
	reasonSignaled         = "Signaled"
	reasonOOMKilled        = "OOMKilled"
	reasonCommandNotFound  = "CommandNotFound"
	reasonPermissionDenied = "PermissionDenied"
	reasonStartFailed      = "StartFailed"
)

func intp(v int) *int       { return &v }
func int64p(v int64) *int64 { return &v }
