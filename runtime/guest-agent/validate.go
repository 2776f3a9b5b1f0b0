package main

// Strict validation of request parameters into normalised internal forms. Pure code.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"unicode/utf8"
)

var nameRe = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$`)

const (
	defaultPath       = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	maxArgs           = 4096
	maxGroups         = 64
	maxID             = 4294967294 // (uid_t)-1 is "no change", never a real id
	maxMemoryBytes    = 1 << 50
	maxCPUMillis      = 1024 * 1000
	maxPids           = 4194304
	maxWritableLayer  = 1 << 40 // 1 TiB: tmpfs only reserves what is written
	minWritableLayer  = 4096
	maxHostnameLen    = 64
	maxExecIDLen      = maxSourceLen
	maxDiskSerialLen  = 20
	maxWorkingDirLen  = 4096
	maxStringArgBytes = 65536
)

// Spec is a validated ContainerSpec.
type Spec struct {
	Name               string
	Disk               string
	FsType             string
	Argv               []string
	Env                []string
	WorkingDir         string
	UID, GID           uint32
	Groups             []uint32
	Hostname           string
	MemoryBytes        int64 // 0 = no limit
	CPUMillis          int64 // 0 = no limit
	Pids               int64 // 0 = no limit
	WritableLayerBytes int64
}

// ExecSpec is a validated exec request.
type ExecSpec struct {
	Container  string
	ExecID     string
	Argv       []string
	Env        []string // nil = the container's
	WorkingDir string   // "" = the container's
	User       *struct {
		UID, GID uint32
		Groups   []uint32
	} // nil = the container's
}

// decodeStrict unmarshals JSON params, mapping type errors to BAD_REQUEST.
func decodeParams(raw []byte, v interface{}) error {
	d := json.NewDecoder(bytes.NewReader(raw))
	if err := d.Decode(v); err != nil {
		return badRequest("bad parameters: %v", err)
	}
	return nil
}

func validName(s string) bool { return nameRe.MatchString(s) }

func checkStrings(field string, list []string, allowEmpty bool) error {
	total := 0
	for i, s := range list {
		if !allowEmpty && s == "" {
			return badRequest("%s[%d] is empty", field, i)
		}
		if strings.IndexByte(s, 0) >= 0 {
			return badRequest("%s[%d] contains a NUL byte", field, i)
		}
		if !utf8.ValidString(s) {
			return badRequest("%s[%d] is not valid UTF-8", field, i)
		}
		total += len(s)
	}
	if total > maxStringArgBytes {
		return badRequest("%s is too long", field)
	}
	return nil
}

func validateArgv(argv []string) error {
	if len(argv) == 0 {
		return badRequest("argv must not be empty")
	}
	if len(argv) > maxArgs {
		return badRequest("argv has more than %d entries", maxArgs)
	}
	if argv[0] == "" {
		return badRequest("argv[0] must not be empty")
	}
	return checkStrings("argv", argv, true)
}

func validateEnv(env []string) error {
	if len(env) > maxArgs {
		return badRequest("env has more than %d entries", maxArgs)
	}
	if err := checkStrings("env", env, false); err != nil {
		return err
	}
	for i, e := range env {
		if k := strings.IndexByte(e, '='); k <= 0 {
			return badRequest("env[%d] is not NAME=VALUE", i)
		}
	}
	return nil
}

func validateDir(field, dir string) error {
	if !strings.HasPrefix(dir, "/") {
		return badRequest("%s must be an absolute path", field)
	}
	if len(dir) > maxWorkingDirLen || strings.IndexByte(dir, 0) >= 0 || !utf8.ValidString(dir) {
		return badRequest("%s is not a valid path", field)
	}
	return nil
}

func validateID(field string, v *int64) (uint32, error) {
	if v == nil {
		return 0, badRequest("%s is required", field)
	}
	if *v < 0 || *v > maxID {
		return 0, badRequest("%s %d is out of range", field, *v)
	}
	return uint32(*v), nil
}

func validateUser(u *UserSpec) (uid, gid uint32, groups []uint32, err error) {
	if uid, err = validateID("user.uid", u.UID); err != nil {
		return
	}
	if gid, err = validateID("user.gid", u.GID); err != nil {
		return
	}
	if len(u.AdditionalGids) > maxGroups {
		err = badRequest("user.additionalGids has more than %d entries", maxGroups)
		return
	}
	groups = []uint32{}
	for i := range u.AdditionalGids {
		var g uint32
		if g, err = validateID(fmt.Sprintf("user.additionalGids[%d]", i), &u.AdditionalGids[i]); err != nil {
			return
		}
		groups = append(groups, g)
	}
	return
}

func validHostname(h string) bool {
	if h == "" || len(h) > maxHostnameLen {
		return false
	}
	for i := 0; i < len(h); i++ {
		c := h[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}

func validDiskSerial(s string) bool {
	if s == "" || len(s) > maxDiskSerialLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= 0x20 || s[i] >= 0x7f || s[i] == '/' {
			return false
		}
	}
	return true
}

func positiveLimit(field string, v *int64, max int64) (int64, error) {
	if v == nil {
		return 0, nil
	}
	if *v < 1 || *v > max {
		return 0, badRequest("limits.%s must be between 1 and %d (absent = no limit)", field, max)
	}
	return *v, nil
}

// validateSpec checks a ContainerSpec and returns its normalised form.
func validateSpec(c *ContainerSpec) (*Spec, error) {
	if c == nil {
		return nil, badRequest("container is required")
	}
	s := &Spec{}
	if c.Name == nil {
		return nil, badRequest("container.name is required")
	}
	if !validName(*c.Name) {
		return nil, badRequest("container.name %q does not match %s", truncate(*c.Name, 80), nameRe.String())
	}
	s.Name = *c.Name
	if c.Disk == nil {
		return nil, badRequest("container.disk is required")
	}
	if !validDiskSerial(*c.Disk) {
		return nil, badRequest("container.disk must be 1..20 printable bytes without '/'")
	}
	s.Disk = *c.Disk
	if c.FsType == nil {
		return nil, badRequest("container.fsType is required")
	}
	if *c.FsType != "ext4" && *c.FsType != "erofs" {
		return nil, badRequest("container.fsType must be ext4 or erofs")
	}
	s.FsType = *c.FsType
	if err := validateArgv(c.Argv); err != nil {
		return nil, err
	}
	s.Argv = c.Argv
	if err := validateEnv(c.Env); err != nil {
		return nil, err
	}
	s.Env = c.Env
	if s.Env == nil {
		s.Env = []string{}
	}
	s.WorkingDir = "/"
	if c.WorkingDir != nil {
		if err := validateDir("container.workingDir", *c.WorkingDir); err != nil {
			return nil, err
		}
		s.WorkingDir = *c.WorkingDir
	}
	s.Groups = []uint32{}
	if c.User != nil {
		var err error
		if s.UID, s.GID, s.Groups, err = validateUser(c.User); err != nil {
			return nil, err
		}
	}
	s.Hostname = s.Name
	if c.Hostname != nil {
		if !validHostname(*c.Hostname) {
			return nil, badRequest("container.hostname must be 1..64 letters, digits, '-' or '.'")
		}
		s.Hostname = *c.Hostname
	}
	if c.Limits != nil {
		var err error
		if s.MemoryBytes, err = positiveLimit("memoryBytes", c.Limits.MemoryBytes, maxMemoryBytes); err != nil {
			return nil, err
		}
		if s.CPUMillis, err = positiveLimit("cpuMillis", c.Limits.CPUMillis, maxCPUMillis); err != nil {
			return nil, err
		}
		if s.Pids, err = positiveLimit("pids", c.Limits.Pids, maxPids); err != nil {
			return nil, err
		}
	}
	if c.WritableLayerBytes == nil {
		return nil, badRequest("container.writableLayerBytes is required")
	}
	if *c.WritableLayerBytes < minWritableLayer || *c.WritableLayerBytes > maxWritableLayer {
		return nil, badRequest("container.writableLayerBytes must be between %d and %d", minWritableLayer, int64(maxWritableLayer))
	}
	s.WritableLayerBytes = *c.WritableLayerBytes
	return s, nil
}

// ExecParams are the `exec` request's parameters.
type ExecParams struct {
	Container  *string   `json:"container"`
	ExecID     *string   `json:"execId"`
	Argv       []string  `json:"argv"`
	Env        []string  `json:"env"`
	WorkingDir *string   `json:"workingDir"`
	User       *UserSpec `json:"user"`
}

func validExecID(s string) bool {
	if s == "" || len(s) > maxExecIDLen || !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return false
		}
	}
	return true
}

// validateExec checks exec parameters.
func validateExec(p *ExecParams) (*ExecSpec, error) {
	e := &ExecSpec{}
	if p.Container == nil {
		return nil, badRequest("container is required")
	}
	if !validName(*p.Container) {
		return nil, badRequest("container %q is not a valid name", truncate(*p.Container, 80))
	}
	e.Container = *p.Container
	if p.ExecID == nil {
		return nil, badRequest("execId is required")
	}
	if !validExecID(*p.ExecID) {
		return nil, badRequest("execId must be 1..128 bytes of UTF-8 without control characters")
	}
	e.ExecID = *p.ExecID
	if err := validateArgv(p.Argv); err != nil {
		return nil, err
	}
	e.Argv = p.Argv
	if p.Env != nil {
		if err := validateEnv(p.Env); err != nil {
			return nil, err
		}
		e.Env = p.Env
	}
	if p.WorkingDir != nil {
		if err := validateDir("workingDir", *p.WorkingDir); err != nil {
			return nil, err
		}
		e.WorkingDir = *p.WorkingDir
	}
	if p.User != nil {
		uid, gid, groups, err := validateUser(p.User)
		if err != nil {
			return nil, err
		}
		e.User = &struct {
			UID, GID uint32
			Groups   []uint32
		}{uid, gid, groups}
	}
	return e, nil
}

// pathFromEnv returns the first PATH of env (what getenv would see), or the default.
func pathFromEnv(env []string) string {
	for _, e := range env {
		if strings.HasPrefix(e, "PATH=") {
			return e[5:]
		}
	}
	return defaultPath
}
