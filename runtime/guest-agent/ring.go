package main

// The output ring (PROTOCOL.md "Output ring"): pipe readers append chunks without ever blocking on the
// port; one writer drains it to caas.out. It keeps the most recent chunks up to a byte budget, written or
// not, so a reconnecting host can replay from the last seq it accepted.

import "sync"

type chunk struct {
	seq    uint64
	stream byte
	source string
	data   []byte
}

// Ring is the bounded output ring. All methods are safe for concurrent use.
type Ring struct {
	mu   sync.Mutex
	cond *sync.Cond

	capBytes int
	bytes    int
	chunks   []chunk // oldest first; chunks[i].seq == chunks[0].seq+i
	head     int     // index of the oldest chunk in chunks (chunks[head:] is live)
	lastSeq  uint64  // last seq produced

	// Writer state.
	attached   bool   // a hello was seen: the writer may write
	cursor     uint64 // next seq to write on this connection
	gapFrom    uint64 // pending gap (0 = none): chunks evicted before they were written
	gapTo      uint64
	replay     bool // a hello asked for a replay start
	replayFrom uint64
	maxWritten uint64 // highest seq handed to the writer at least once
	dropped    uint64 // chunks evicted before they were ever written
	closed     bool
}

// NewRing makes a ring holding up to capBytes of chunk data (at least the newest chunk is always kept).
func NewRing(capBytes int) *Ring {
	r := &Ring{capBytes: capBytes, cursor: 1}
	r.cond = sync.NewCond(&r.mu)
	return r
}

func (r *Ring) live() []chunk { return r.chunks[r.head:] }

// oldestLocked is the seq of the oldest retained chunk, or lastSeq+1 when empty.
func (r *Ring) oldestLocked() uint64 {
	if l := r.live(); len(l) > 0 {
		return l[0].seq
	}
	return r.lastSeq + 1
}

// Append stores a copy of data (1..maxChunkData bytes; longer data is split) and returns the seq of the
// last chunk stored. It never blocks on the writer.
func (r *Ring) Append(stream byte, source string, data []byte) uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	for len(data) > 0 {
		n := len(data)
		if n > maxChunkData {
			n = maxChunkData
		}
		r.lastSeq++
		r.chunks = append(r.chunks, chunk{seq: r.lastSeq, stream: stream, source: source, data: append([]byte(nil), data[:n]...)})
		r.bytes += n
		data = data[n:]
		r.evictLocked()
	}
	r.cond.Broadcast()
	return r.lastSeq
}

func (r *Ring) evictLocked() {
	for r.bytes > r.capBytes && len(r.live()) > 1 {
		c := r.chunks[r.head]
		r.chunks[r.head] = chunk{}
		r.head++
		r.bytes -= len(c.data)
		if c.seq >= r.cursor {
			// Not yet written on this connection: the writer reports it as a gap.
			if r.gapFrom == 0 {
				r.gapFrom = c.seq
			}
			r.gapTo = c.seq
			r.cursor = c.seq + 1
		}
		if c.seq > r.maxWritten {
			r.dropped++
		}
	}
	// Compact the backing array once the dead prefix dominates.
	if r.head > 64 && r.head*2 > len(r.chunks) {
		n := copy(r.chunks, r.chunks[r.head:])
		for i := n; i < len(r.chunks); i++ {
			r.chunks[i] = chunk{}
		}
		r.chunks = r.chunks[:n]
		r.head = 0
	}
}

// Restart is called on hello with outputFrom S: the writer next writes a replay start naming S+1, a gap
// for S+1..oldest-1 if those are gone, the retained chunks with seq > S, then live ones. (An S beyond the
// last produced seq is taken as is: nothing up to S is written on this connection.)
func (r *Ring) Restart(s uint64) {
	r.mu.Lock()
	r.replay = true
	r.replayFrom = s
	r.attached = true
	r.cond.Broadcast()
	r.mu.Unlock()
}

// Next blocks until there is a frame to write and returns it (encoded, ≤ maxOutFrame bytes).
// ok is false once the ring is closed.
func (r *Ring) Next() (frame []byte, ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for {
		if r.closed {
			return nil, false
		}
		if r.replay {
			r.replay = false
			s := r.replayFrom
			r.cursor = s + 1
			r.gapFrom, r.gapTo = 0, 0
			if oldest := r.oldestLocked(); oldest > s+1 && oldest-1 <= r.lastSeq {
				r.gapFrom, r.gapTo = s+1, oldest-1
				r.cursor = oldest
			}
			return encodeReplayFrame(s + 1), true
		}
		if r.attached {
			if r.gapFrom != 0 {
				f := encodeGapFrame(r.gapFrom, r.gapTo)
				r.gapFrom, r.gapTo = 0, 0
				return f, true
			}
			if r.cursor <= r.lastSeq {
				oldest := r.oldestLocked()
				if r.cursor < oldest { // cannot happen: eviction moves the cursor; be safe
					f := encodeGapFrame(r.cursor, oldest-1)
					r.cursor = oldest
					return f, true
				}
				c := r.live()[r.cursor-oldest]
				r.cursor++
				if c.seq > r.maxWritten {
					r.maxWritten = c.seq
				}
				return encodeChunkFrame(c.seq, c.stream, c.source, c.data), true
			}
		}
		r.cond.Wait()
	}
}

// Close wakes the writer for good.
func (r *Ring) Close() {
	r.mu.Lock()
	r.closed = true
	r.cond.Broadcast()
	r.mu.Unlock()
}

// LastSeq is the seq of the last chunk produced.
func (r *Ring) LastSeq() uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.lastSeq
}

// Dropped is the number of chunks evicted before they were ever written.
func (r *Ring) Dropped() uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.dropped
}

// Idle reports whether the writer has nothing left to write on this connection.
func (r *Ring) Idle() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return !r.replay && r.gapFrom == 0 && r.cursor > r.lastSeq
}
