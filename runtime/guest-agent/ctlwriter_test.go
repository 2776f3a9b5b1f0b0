package main

import (
	"encoding/json"
	"sync"
	"testing"
	"time"
)

type capture struct {
	mu     sync.Mutex
	frames []map[string]interface{}
}

func (c *capture) write(b []byte) {
	var m map[string]interface{}
	json.Unmarshal(b[headerLen:], &m)
	c.mu.Lock()
	c.frames = append(c.frames, m)
	c.mu.Unlock()
}

func (c *capture) wait(t *testing.T, n int) []map[string]interface{} {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) {
		c.mu.Lock()
		if len(c.frames) >= n {
			res := append([]map[string]interface{}(nil), c.frames...)
			c.mu.Unlock()
			time.Sleep(20 * time.Millisecond)
			c.mu.Lock()
			defer c.mu.Unlock()
			if len(c.frames) != n {
				t.Fatalf("got %d frames, want %d", len(c.frames), n)
			}
			return res
		}
		c.mu.Unlock()
		time.Sleep(5 * time.Millisecond)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	t.Fatalf("got %d frames, want %d: %v", len(c.frames), n, c.frames)
	return nil
}

func TestCtlWriterEventsOnlyAfterHelloAndReplay(t *testing.T) {
	w := NewCtlWriter()
	c := &capture{}
	go w.Run(c.write)
	defer w.Close()
	for i := 0; i < 3; i++ {
		w.Emit(Event{Event: "guest.warning", Message: "m"})
	}
	w.Reply([]byte("\xCA\x5A\x01\x01\x00\x00\x00\x08{\"id\":1}"), nil)
	fs := c.wait(t, 1) // a response, but no events before a hello
	if fs[0]["id"] != float64(1) {
		t.Fatal(fs)
	}
	w.ReplyHello(encodeFrame(kindJSON, []byte(`{"id":2,"hello":true}`)), 1)
	fs = c.wait(t, 4) // hello, then events 2 and 3
	if fs[1]["hello"] != true || fs[2]["seq"] != float64(2) || fs[3]["seq"] != float64(3) {
		t.Fatal(fs)
	}
	w.Emit(Event{Event: "guest.warning", Message: "live"})
	fs = c.wait(t, 5)
	if fs[4]["seq"] != float64(4) || fs[4]["message"] != "live" {
		t.Fatal(fs)
	}
	// A reconnecting host that saw nothing gets everything again.
	w.ReplyHello(encodeFrame(kindJSON, []byte(`{"id":3}`)), 0)
	fs = c.wait(t, 10)
	if fs[6]["seq"] != float64(1) || fs[9]["seq"] != float64(4) {
		t.Fatal(fs)
	}
	if !w.Flushed() {
		t.Fatal("not flushed")
	}
}

func TestCtlWriterKeepsLast1024Events(t *testing.T) {
	w := NewCtlWriter()
	for i := 0; i < 1500; i++ {
		w.Emit(Event{Event: "guest.warning", Message: "m"})
	}
	c := &capture{}
	go w.Run(c.write)
	defer w.Close()
	w.ReplyHello(encodeFrame(kindJSON, []byte(`{"id":1}`)), 0)
	fs := c.wait(t, 1+eventLogSize)
	if fs[1]["seq"] != float64(1500-eventLogSize+1) || fs[eventLogSize]["seq"] != float64(1500) {
		t.Fatal(fs[1], fs[eventLogSize])
	}
	if w.LastEventSeq() != 1500 {
		t.Fatal(w.LastEventSeq())
	}
}

func TestKeyedQueueOrderPerKey(t *testing.T) {
	q := newKeyedQueue()
	var mu sync.Mutex
	var got []int
	var wg sync.WaitGroup
	block := make(chan struct{})
	wg.Add(1)
	q.Do("a", func() { <-block; mu.Lock(); got = append(got, 1); mu.Unlock(); wg.Done() })
	for i := 2; i <= 5; i++ {
		i := i
		wg.Add(1)
		q.Do("a", func() { mu.Lock(); got = append(got, i); mu.Unlock(); wg.Done() })
	}
	// Another key is not blocked by "a".
	done := make(chan struct{})
	q.Do("b", func() { close(done) })
	select {
	case <-done:
	case <-time.After(time.Second):
		t.Fatal("key b blocked by key a")
	}
	close(block)
	wg.Wait()
	for i, v := range got {
		if v != i+1 {
			t.Fatalf("order %v", got)
		}
	}
}

func TestTruncateUTF8(t *testing.T) {
	if s := truncate("héllo", 2); s != "h" {
		t.Fatalf("%q", s)
	}
	if s := truncate("abc", 5); s != "abc" {
		t.Fatal(s)
	}
}
