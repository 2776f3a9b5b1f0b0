package main

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

func fakeStat(files map[string]os.FileMode) statFunc {
	return func(p string) (os.FileMode, error) {
		if m, ok := files[p]; ok {
			return m, nil
		}
		return 0, &os.PathError{Op: "stat", Path: p, Err: syscall.ENOENT}
	}
}

func TestResolveCommand(t *testing.T) {
	fs := fakeStat(map[string]os.FileMode{
		"/bin/sh":         0o755,
		"/usr/bin/noexec": 0o644,
		"/bin/noexec":     0o644,
		"/sbin/noexec":    0o755,
		"/usr/bin/dir":    os.ModeDir | 0o755,
		"/app/run":        0o700,
		"/app/bin/tool":   0o755,
		"/opt/x/only":     0o644,
	})
	cases := []struct {
		argv0, path, dir string
		want             string
		kind             error
	}{
		{"sh", "/usr/bin:/bin", "/", "/bin/sh", nil},
		{"/bin/sh", "", "/", "/bin/sh", nil},
		{"./run", "/bin", "/app", "/app/run", nil},
		{"bin/tool", "/bin", "/app", "/app/bin/tool", nil},
		{"run", ":/bin", "/app", "/app/run", nil},     // empty entry = working directory
		{"tool", "bin", "/app", "/app/bin/tool", nil}, // relative entry
		{"noexec", "/usr/bin:/bin:/sbin", "/", "/sbin/noexec", nil},
		{"missing", "/usr/bin:/bin", "/", "", errCommandNotFound},
		{"only", "/bin:/opt/x", "/", "", errPermissionDenied},
		{"dir", "/usr/bin", "/", "", errPermissionDenied},
		{"/usr/bin/noexec", "/bin", "/", "", errPermissionDenied},
		{"/nope", "/bin", "/", "", errCommandNotFound},
		{"sh", "", "/", "", errCommandNotFound}, // PATH= is the working directory only
	}
	for _, c := range cases {
		got, err := resolveCommand(c.argv0, c.path, c.dir, fs)
		if c.kind == nil {
			if err != nil || got != c.want {
				t.Errorf("%s in %q: got %q %v, want %q", c.argv0, c.path, got, err, c.want)
			}
			continue
		}
		if !errors.Is(err, c.kind) {
			t.Errorf("%s in %q: got %q %v, want %v", c.argv0, c.path, got, err, c.kind)
		}
	}
}

func TestResolveCommandRealFiles(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "a"), 0o755)
	os.MkdirAll(filepath.Join(dir, "b"), 0o755)
	os.WriteFile(filepath.Join(dir, "a", "prog"), []byte("x"), 0o644)
	os.WriteFile(filepath.Join(dir, "b", "prog"), []byte("#!/bin/sh\n"), 0o755)
	os.Symlink(filepath.Join(dir, "b", "prog"), filepath.Join(dir, "a", "link"))
	os.Symlink(filepath.Join(dir, "nowhere"), filepath.Join(dir, "a", "dangling"))
	path := filepath.Join(dir, "a") + ":" + filepath.Join(dir, "b")
	if got, err := resolveCommand("prog", path, "/", osStat); err != nil || got != filepath.Join(dir, "b", "prog") {
		t.Fatalf("%q %v", got, err)
	}
	if got, err := resolveCommand("link", path, "/", osStat); err != nil || got != filepath.Join(dir, "a", "link") {
		t.Fatalf("%q %v", got, err)
	}
	if _, err := resolveCommand("dangling", path, "/", osStat); !errors.Is(err, errCommandNotFound) {
		t.Fatalf("dangling symlink: %v", err)
	}
}
