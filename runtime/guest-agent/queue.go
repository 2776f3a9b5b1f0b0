package main

import "sync"

// keyedQueue runs the functions given for one key in order, one at a time; different keys run
// concurrently. Requests about one container keep their order without blocking the others.
type keyedQueue struct {
	mu sync.Mutex
	qs map[string][]func()
}

func newKeyedQueue() *keyedQueue { return &keyedQueue{qs: map[string][]func(){}} }

// Do queues f under key.
func (k *keyedQueue) Do(key string, f func()) {
	k.mu.Lock()
	q, busy := k.qs[key]
	k.qs[key] = append(q, f)
	k.mu.Unlock()
	if !busy {
		go k.drain(key)
	}
}

func (k *keyedQueue) drain(key string) {
	for {
		k.mu.Lock()
		q := k.qs[key]
		if len(q) == 0 {
			delete(k.qs, key)
			k.mu.Unlock()
			return
		}
		f := q[0]
		q[0] = nil
		k.qs[key] = q[1:]
		k.mu.Unlock()
		f()
	}
}
