package main

import (
	"encoding/binary"
	"testing"
	"time"
)

type outFrame struct {
	kind     byte
	seq      uint64 // chunk seq, gap from, replay from
	to       uint64 // gap to
	stream   byte
	source   string
	data     string
	rawBytes int
}

func parseOut(t *testing.T, b []byte) outFrame {
	t.Helper()
	f, n, err := decodeOutFrame(b)
	if err != nil || n != len(b) {
		t.Fatalf("bad frame: %v", err)
	}
	o := outFrame{kind: f.Kind, rawBytes: len(b)}
	switch f.Kind {
	case kindChunk:
		o.seq = binary.BigEndian.Uint64(f.Payload)
		o.stream = f.Payload[8]
		l := int(f.Payload[9])
		o.source = string(f.Payload[10 : 10+l])
		o.data = string(f.Payload[10+l:])
	case kindGap:
		o.seq = binary.BigEndian.Uint64(f.Payload)
		o.to = binary.BigEndian.Uint64(f.Payload[8:])
	case kindReplay:
		o.seq = binary.BigEndian.Uint64(f.Payload)
	}
	return o
}

// drain takes every frame the ring has ready right now.
func drain(t *testing.T, r *Ring) []outFrame {
	t.Helper()
	var res []outFrame
	for {
		ch := make(chan []byte, 1)
		go func() {
			f, _ := r.Next()
			ch <- f
		}()
		select {
		case f := <-ch:
			if f == nil {
				return res
			}
			res = append(res, parseOut(t, f))
		case <-time.After(50 * time.Millisecond):
			r.Close() // unblock the pending Next
			<-ch
			r.mu.Lock()
			r.closed = false
			r.mu.Unlock()
			return res
		}
	}
}

func TestRingNothingWrittenBeforeHello(t *testing.T) {
	r := NewRing(1 << 20)
	r.Append(streamStdout, "web", []byte("a"))
	if fs := drain(t, r); len(fs) != 0 {
		t.Fatalf("wrote %v before any hello", fs)
	}
	r.Restart(0)
	fs := drain(t, r)
	if len(fs) != 2 || fs[0].kind != kindReplay || fs[0].seq != 1 || fs[1].kind != kindChunk || fs[1].data != "a" || fs[1].source != "web" {
		t.Fatalf("%+v", fs)
	}
}

func TestRingReplayFromS(t *testing.T) {
	r := NewRing(1 << 20)
	for i := 0; i < 5; i++ {
		r.Append(streamStdout, "c", []byte{byte('a' + i)})
	}
	r.Restart(0)
	if fs := drain(t, r); len(fs) != 6 {
		t.Fatalf("%d frames", len(fs))
	}
	// The host accepted up to 3 and reconnects.
	r.Restart(3)
	fs := drain(t, r)
	if len(fs) != 3 || fs[0].kind != kindReplay || fs[0].seq != 4 || fs[1].seq != 4 || fs[1].data != "d" || fs[2].seq != 5 {
		t.Fatalf("%+v", fs)
	}
	// Live chunks follow.
	r.Append(streamStderr, "c", []byte("z"))
	fs = drain(t, r)
	if len(fs) != 1 || fs[0].seq != 6 || fs[0].stream != streamStderr {
		t.Fatalf("%+v", fs)
	}
	// A host claiming more than was produced gets a replay start naming its position + 1, and only
	// chunks after its position.
	r.Restart(7)
	fs = drain(t, r)
	if len(fs) != 1 || fs[0].kind != kindReplay || fs[0].seq != 8 {
		t.Fatalf("%+v", fs)
	}
	r.Append(streamStdout, "c", []byte("7"))
	if fs = drain(t, r); len(fs) != 0 {
		t.Fatalf("%+v", fs)
	}
	r.Append(streamStdout, "c", []byte("8"))
	if fs = drain(t, r); len(fs) != 1 || fs[0].seq != 8 {
		t.Fatalf("%+v", fs)
	}
	if r.Dropped() != 0 {
		t.Fatal("dropped")
	}
}

func TestRingEvictionGapsAndDrops(t *testing.T) {
	r := NewRing(10) // bytes
	for i := 0; i < 10; i++ {
		r.Append(streamStdout, "c", []byte("abcd")) // 4 bytes each: 2 fit
	}
	// Chunks 1..8 were evicted before any write.
	if r.Dropped() != 8 {
		t.Fatalf("dropped %d", r.Dropped())
	}
	r.Restart(0)
	fs := drain(t, r)
	if len(fs) != 4 || fs[0].kind != kindReplay || fs[0].seq != 1 ||
		fs[1].kind != kindGap || fs[1].seq != 1 || fs[1].to != 8 ||
		fs[2].seq != 9 || fs[3].seq != 10 {
		t.Fatalf("%+v", fs)
	}
	// While the (blocked or gone) host is not reading: 3 more chunks, 11 is evicted unwritten.
	r.Append(streamStdout, "c", []byte("1111"))
	r.Append(streamStdout, "c", []byte("2222"))
	r.Append(streamStdout, "c", []byte("3333"))
	if r.Dropped() != 9 {
		t.Fatalf("dropped %d", r.Dropped())
	}
	fs = drain(t, r)
	if len(fs) != 3 || fs[0].kind != kindGap || fs[0].seq != 11 || fs[0].to != 11 || fs[1].seq != 12 || fs[2].seq != 13 {
		t.Fatalf("%+v", fs)
	}
	// A host that had accepted only up to 5 reconnects: gap 6..11 (already written ones are not re-counted).
	r.Restart(5)
	fs = drain(t, r)
	if len(fs) != 4 || fs[0].seq != 6 || fs[1].kind != kindGap || fs[1].seq != 6 || fs[1].to != 11 || fs[2].seq != 12 {
		t.Fatalf("%+v", fs)
	}
	if r.Dropped() != 9 {
		t.Fatalf("dropped %d", r.Dropped())
	}
}

func TestRingEvictsWrittenChunksWithoutGap(t *testing.T) {
	r := NewRing(8)
	r.Restart(0)
	drain(t, r)
	for i := 0; i < 4; i++ {
		r.Append(streamStdout, "c", []byte("abcd"))
		if fs := drain(t, r); len(fs) != 1 || fs[0].kind != kindChunk {
			t.Fatalf("%+v", fs)
		}
	}
	if r.Dropped() != 0 {
		t.Fatalf("dropped %d", r.Dropped())
	}
}

func TestRingSplitsLargeDataAndBoundsFrames(t *testing.T) {
	r := NewRing(1 << 20)
	big := make([]byte, maxChunkData*2+5)
	last := r.Append(streamStdout, string(make([]byte, maxSourceLen)), big)
	if last != 3 {
		t.Fatalf("last seq %d", last)
	}
	r.Restart(0)
	for _, f := range drain(t, r) {
		if f.rawBytes > maxOutFrame {
			t.Fatalf("frame of %d bytes", f.rawBytes)
		}
	}
}

func TestRingKeepsNewestChunkEvenIfOverBudget(t *testing.T) {
	r := NewRing(16)
	r.Append(streamStdout, "c", make([]byte, 100))
	r.Append(streamStdout, "c", make([]byte, 100))
	r.Restart(0)
	fs := drain(t, r)
	if len(fs) != 3 || fs[1].kind != kindGap || fs[2].seq != 2 || len(fs[2].data) != 100 {
		t.Fatalf("%+v", fs)
	}
}

func TestRingManyChunksCompaction(t *testing.T) {
	r := NewRing(1000)
	r.Restart(0)
	for i := 0; i < 5000; i++ {
		r.Append(streamStdout, "c", []byte("0123456789"))
	}
	fs := drain(t, r)
	// replay start, one gap for everything evicted, then the 100 retained chunks.
	if len(fs) != 102 || fs[1].kind != kindGap || fs[1].seq != 1 || fs[1].to != 4900 || fs[101].seq != 5000 {
		t.Fatalf("%d frames; %+v", len(fs), fs[:2])
	}
	if r.Dropped() != 4900 {
		t.Fatalf("dropped %d", r.Dropped())
	}
}
