package main

// Resolution of argv[0] against the container's PATH, done by the shim inside the container's root so a
// missing command and a non-executable one are told apart (CommandNotFound 127, PermissionDenied 126).

import (
	"errors"
	"fmt"
	"os"
	"path"
	"strings"
	"syscall"
)

// errCommandNotFound and errPermissionDenied classify resolution failures.
var (
	errCommandNotFound  = errors.New("command not found")
	errPermissionDenied = errors.New("permission denied")
)

// resolveError wraps a classification with a message for the status.
type resolveError struct {
	kind error
	msg  string
}

func (e *resolveError) Error() string { return e.msg }
func (e *resolveError) Unwrap() error { return e.kind }

// statFunc returns the mode of path, following symlinks.
type statFunc func(p string) (os.FileMode, error)

func osStat(p string) (os.FileMode, error) {
	fi, err := os.Stat(p)
	if err != nil {
		return 0, err
	}
	return fi.Mode(), nil
}

// checkExecutable classifies one candidate: nil if it may be executed.
func checkExecutable(p string, stat statFunc) error {
	mode, err := stat(p)
	if err != nil {
		if errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ENOTDIR) || errors.Is(err, os.ErrNotExist) {
			return errCommandNotFound
		}
		return errPermissionDenied
	}
	if !mode.IsRegular() || mode.Perm()&0o111 == 0 {
		return errPermissionDenied
	}
	return nil
}

// resolveCommand returns the path to execute for argv0. A name with a '/' is used as is (relative to
// workingDir); otherwise each PATH entry is tried in order (an empty entry means the working directory),
// like execvp: the first executable regular file wins; if none, PermissionDenied when some candidate
// existed but could not be executed, else CommandNotFound.
func resolveCommand(argv0, pathList, workingDir string, stat statFunc) (string, error) {
	abs := func(p string) string {
		if strings.HasPrefix(p, "/") {
			return p
		}
		return path.Join(workingDir, p)
	}
	if strings.Contains(argv0, "/") {
		p := abs(argv0)
		switch err := checkExecutable(p, stat); err {
		case nil:
			return p, nil
		case errCommandNotFound:
			return "", &resolveError{errCommandNotFound, fmt.Sprintf("%s: no such file", argv0)}
		default:
			return "", &resolveError{errPermissionDenied, fmt.Sprintf("%s: not an executable file", argv0)}
		}
	}
	denied := ""
	for _, dir := range strings.Split(pathList, ":") {
		if dir == "" {
			dir = "."
		}
		p := abs(path.Join(dir, argv0))
		switch err := checkExecutable(p, stat); err {
		case nil:
			return p, nil
		case errPermissionDenied:
			if denied == "" {
				denied = p
			}
		}
	}
	if denied != "" {
		return "", &resolveError{errPermissionDenied, fmt.Sprintf("%s: %s is not an executable file", argv0, denied)}
	}
	return "", &resolveError{errCommandNotFound, fmt.Sprintf("%s: command not found in PATH %s", argv0, truncate(pathList, 512))}
}
