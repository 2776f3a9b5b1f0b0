package main

// The control port's single writer: responses (in order) and events from the bounded event log.
// Handlers only enqueue; the goroutine running Run is the only one that writes to caas.ctl, so a host
// that is gone (writes block) never stalls request handling.

import (
	"encoding/json"
	"sync"
)

const (
	eventLogSize     = 1024
	maxQueuedReplies = 1024
)

type loggedEvent struct {
	seq   uint64
	frame []byte
}

type reply struct {
	frame []byte
	// hello: after writing this frame, events are (re)sent from eventsFrom+1.
	hello      bool
	eventsFrom uint64
	done       chan struct{} // closed once written (may be nil)
}

// CtlWriter serialises everything written on caas.ctl.
type CtlWriter struct {
	mu      sync.Mutex
	cond    *sync.Cond
	replies []reply
	events  []loggedEvent // last eventLogSize events, oldest first
	lastSeq uint64
	// cursor is the next event seq to write; events are only written after a hello response.
	cursor   uint64
	attached bool
	closed   bool
	inflight bool // a frame is being written
}

// NewCtlWriter makes an empty writer.
func NewCtlWriter() *CtlWriter {
	w := &CtlWriter{cursor: 1}
	w.cond = sync.NewCond(&w.mu)
	return w
}

// Emit appends an event to the log with the next seq and returns that seq.
func (w *CtlWriter) Emit(ev Event) uint64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.lastSeq++
	ev.Seq = w.lastSeq
	payload, err := json.Marshal(ev)
	if err == nil && len(payload) > maxJSONPayload {
		// Only a message can be that long; keep the event, shorten the message.
		ev.Message = truncate(ev.Message, 1024)
		payload, err = json.Marshal(ev)
	}
	if err != nil {
		payload, _ = json.Marshal(Event{Event: "guest.warning", Seq: ev.Seq, Message: "event lost: " + err.Error()})
	}
	w.events = append(w.events, loggedEvent{seq: ev.Seq, frame: encodeFrame(kindJSON, payload)})
	if len(w.events) > eventLogSize {
		n := copy(w.events, w.events[len(w.events)-eventLogSize:])
		for i := n; i < len(w.events); i++ {
			w.events[i] = loggedEvent{}
		}
		w.events = w.events[:n]
	}
	w.cond.Broadcast()
	return ev.Seq
}

// LastEventSeq is the seq of the last event produced.
func (w *CtlWriter) LastEventSeq() uint64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.lastSeq
}

// Reply queues a response frame. done, if not nil, is closed once the frame was written.
func (w *CtlWriter) Reply(frame []byte, done chan struct{}) {
	w.enqueue(reply{frame: frame, done: done})
}

// ReplyHello queues a hello response; the events with seq > eventsFrom follow it.
func (w *CtlWriter) ReplyHello(frame []byte, eventsFrom uint64) {
	w.enqueue(reply{frame: frame, hello: true, eventsFrom: eventsFrom})
}

func (w *CtlWriter) enqueue(r reply) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.replies) >= maxQueuedReplies {
		// Only possible while no host reads; an old response is useless to a new host.
		if w.replies[0].done != nil {
			close(w.replies[0].done)
		}
		w.replies = w.replies[1:]
	}
	w.replies = append(w.replies, r)
	w.cond.Broadcast()
}

// next blocks for the next frame to write. after is called once the frame was written.
func (w *CtlWriter) next() (frame []byte, after func(), ok bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for {
		if w.closed {
			return nil, nil, false
		}
		if len(w.replies) > 0 {
			r := w.replies[0]
			w.replies[0] = reply{}
			w.replies = w.replies[1:]
			w.inflight = true
			return r.frame, func() {
				w.mu.Lock()
				w.inflight = false
				w.cond.Broadcast()
				if r.hello {
					w.attached = true
					w.cursor = r.eventsFrom + 1
				}
				w.mu.Unlock()
				if r.done != nil {
					close(r.done)
				}
			}, true
		}
		if w.attached && w.cursor <= w.lastSeq && len(w.events) > 0 {
			oldest := w.events[0].seq
			if w.cursor < oldest {
				w.cursor = oldest
			}
			ev := w.events[w.cursor-oldest]
			w.cursor++
			w.inflight = true
			return ev.frame, func() {
				w.mu.Lock()
				w.inflight = false
				w.cond.Broadcast()
				w.mu.Unlock()
			}, true
		}
		w.cond.Wait()
	}
}

// Run writes frames with write until Close.
func (w *CtlWriter) Run(write func([]byte)) {
	for {
		frame, after, ok := w.next()
		if !ok {
			return
		}
		write(frame)
		after()
	}
}

// Close stops Run.
func (w *CtlWriter) Close() {
	w.mu.Lock()
	w.closed = true
	w.cond.Broadcast()
	w.mu.Unlock()
}

// Flushed reports whether every event was written and no reply is queued.
func (w *CtlWriter) Flushed() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.replies) == 0 && !w.inflight && (!w.attached || w.cursor > w.lastSeq)
}

// truncate cuts s to at most n bytes on a UTF-8 boundary.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && n < len(s) && s[n]&0xC0 == 0x80 {
		n--
	}
	return s[:n]
}
