package main

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"testing"
)

func jsonFrame(t *testing.T, v interface{}) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	f, err := encodeJSONFrame(b)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func TestEncodeFrameHeader(t *testing.T) {
	f := encodeFrame(kindJSON, []byte(`{}`))
	want := []byte{0xCA, 0x5A, 1, 1, 0, 0, 0, 2, '{', '}'}
	if !bytes.Equal(f, want) {
		t.Fatalf("got % x want % x", f, want)
	}
	if _, err := encodeJSONFrame(make([]byte, maxJSONPayload+1)); err == nil {
		t.Fatal("an oversize JSON payload was framed")
	}
	if _, err := encodeJSONFrame(make([]byte, maxJSONPayload)); err != nil {
		t.Fatal(err)
	}
}

func TestDecoderRoundTripAndSplitInput(t *testing.T) {
	var stream []byte
	for i := 1; i <= 3; i++ {
		stream = append(stream, jsonFrame(t, map[string]interface{}{"id": i, "op": "ping"})...)
	}
	// Feed one byte at a time: frames come out whole and in order.
	d := newDecoder(isHelloPayload)
	var got []string
	for _, b := range stream {
		d.Feed([]byte{b})
		for {
			f, err := d.Next()
			if err == errNeedMore {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, string(f.Payload))
		}
	}
	if len(got) != 3 || got[2] != `{"id":3,"op":"ping"}` {
		t.Fatalf("got %q", got)
	}
	if d.Buffered() != 0 {
		t.Fatalf("%d bytes left", d.Buffered())
	}
}

func TestDecoderRejectsMalformed(t *testing.T) {
	good := jsonFrame(t, map[string]interface{}{"id": 1, "op": "ping"})
	mod := func(f func(b []byte) []byte) []byte { return f(append([]byte(nil), good...)) }
	cases := map[string][]byte{
		"bad magic 0":   mod(func(b []byte) []byte { b[0] = 0xCB; return b }),
		"bad magic 1":   mod(func(b []byte) []byte { b[1] = 0; return b }),
		"bad version":   mod(func(b []byte) []byte { b[2] = 2; return b }),
		"kind 0":        mod(func(b []byte) []byte { b[3] = 0; return b }),
		"kind 2 on ctl": mod(func(b []byte) []byte { b[3] = kindChunk; return b }),
		"kind 5":        mod(func(b []byte) []byte { b[3] = 5; return b }),
		"zero length":   mod(func(b []byte) []byte { binary.BigEndian.PutUint32(b[4:], 0); return b[:8] }),
		"oversize":      mod(func(b []byte) []byte { binary.BigEndian.PutUint32(b[4:], maxJSONPayload+1); return b }),
		"huge length":   mod(func(b []byte) []byte { binary.BigEndian.PutUint32(b[4:], 0xFFFFFFFF); return b }),
		"garbage":       []byte("GET / HTTP/1.1\r\n\r\n"),
	}
	for name, in := range cases {
		d := newDecoder(isHelloPayload)
		d.Feed(in)
		_, err := d.Next()
		var de *DecodeError
		if !errors.As(err, &de) {
			t.Errorf("%s: got %v, want a DecodeError", name, err)
		}
	}
	// A bad first byte is rejected before a whole header arrived.
	d := newDecoder(nil)
	d.Feed([]byte{0x00})
	if _, err := d.Next(); err == errNeedMore || err == nil {
		t.Fatal("a bad magic byte was not rejected early")
	}
	// A truncated frame waits for more.
	d = newDecoder(nil)
	d.Feed(good[:len(good)-1])
	if _, err := d.Next(); err != errNeedMore {
		t.Fatalf("truncated frame: %v", err)
	}
}

func TestDecoderResyncFindsNextHello(t *testing.T) {
	d := newDecoder(isHelloPayload)
	d.Feed([]byte{0xCA, 0x5A, 9, 9})
	if _, err := d.Next(); err == nil || err == errNeedMore {
		t.Fatal("expected a decode error")
	}
	d.Resync()
	var in []byte
	in = append(in, "noise\xCA\x5Ajunk"...)
	in = append(in, jsonFrame(t, map[string]interface{}{"id": 5, "op": "ping"})...) // not a hello: skipped
	in = append(in, jsonFrame(t, map[string]interface{}{"id": 6, "op": "hello", "protocol": 1})...)
	in = append(in, jsonFrame(t, map[string]interface{}{"id": 7, "op": "stats"})...)
	// Split the input at an awkward point to check the resync waits for whole frames.
	d.Feed(in[:20])
	if _, err := d.Next(); err != errNeedMore {
		t.Fatalf("got %v", err)
	}
	d.Feed(in[20:])
	f, err := d.Next()
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]interface{}
	json.Unmarshal(f.Payload, &m)
	if m["op"] != "hello" || m["id"] != float64(6) {
		t.Fatalf("resync returned %s", f.Payload)
	}
	if d.Resyncing() {
		t.Fatal("still resyncing after a hello")
	}
	f, err = d.Next()
	if err != nil || !bytes.Contains(f.Payload, []byte(`"stats"`)) {
		t.Fatalf("after the hello: %s %v", f.Payload, err)
	}
}

func TestDecoderResetDropsPartialFrame(t *testing.T) {
	good := jsonFrame(t, map[string]interface{}{"id": 1, "op": "ping"})
	d := newDecoder(isHelloPayload)
	d.Feed(good[:5])
	d.Reset()
	d.Feed(good)
	f, err := d.Next()
	if err != nil || !bytes.Equal(f.Payload, good[8:]) {
		t.Fatalf("%s %v", f.Payload, err)
	}
}

func TestOutputFrames(t *testing.T) {
	data := bytes.Repeat([]byte("x"), maxChunkData)
	src := string(bytes.Repeat([]byte("s"), maxSourceLen))
	f := encodeChunkFrame(42, streamStderr, src, data)
	if len(f) > maxOutFrame {
		t.Fatalf("a maximal chunk frame is %d bytes", len(f))
	}
	fr, n, err := decodeOutFrame(f)
	if err != nil || n != len(f) || fr.Kind != kindChunk {
		t.Fatal(err)
	}
	p := fr.Payload
	if binary.BigEndian.Uint64(p) != 42 || p[8] != streamStderr || int(p[9]) != maxSourceLen || string(p[10:10+maxSourceLen]) != src || !bytes.Equal(p[10+maxSourceLen:], data) {
		t.Fatal("chunk fields")
	}
	g := encodeGapFrame(3, 9)
	fr, _, err = decodeOutFrame(g)
	if err != nil || fr.Kind != kindGap || binary.BigEndian.Uint64(fr.Payload) != 3 || binary.BigEndian.Uint64(fr.Payload[8:]) != 9 {
		t.Fatal("gap")
	}
	r := encodeReplayFrame(7)
	fr, _, err = decodeOutFrame(r)
	if err != nil || fr.Kind != kindReplay || binary.BigEndian.Uint64(fr.Payload) != 7 {
		t.Fatal("replay")
	}
}

func TestParseID(t *testing.T) {
	for raw, ok := range map[string]bool{"1": true, "7": true, "9007199254740991": true, "0": false, "-1": false,
		"1.5": false, "1e3": false, `"7"`: false, "null": false, "": false, "9007199254740992": false} {
		if _, got := parseID(json.RawMessage(raw)); got != ok {
			t.Errorf("parseID(%s) = %v", raw, got)
		}
	}
}
