package main

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

const goodSpec = `{
  "name": "web", "disk": "c0", "fsType": "ext4", "argv": ["/bin/httpd", "-f"], "env": ["PATH=/bin:/usr/bin"],
  "workingDir": "/", "user": {"uid": 0, "gid": 0, "additionalGids": []}, "hostname": "web",
  "limits": {"memoryBytes": 67108864, "cpuMillis": 500, "pids": 256}, "writableLayerBytes": 67108864
}`

func specWith(t *testing.T, edit func(m map[string]interface{})) *ContainerSpec {
	t.Helper()
	var m map[string]interface{}
	if err := json.Unmarshal([]byte(goodSpec), &m); err != nil {
		t.Fatal(err)
	}
	edit(m)
	b, _ := json.Marshal(m)
	var c ContainerSpec
	if err := decodeParams(b, &c); err != nil {
		t.Fatalf("decode: %v", err)
	}
	return &c
}

func isBadRequest(err error) bool {
	var re *reqError
	return errors.As(err, &re) && re.code == codeBadRequest
}

func TestValidateSpecGood(t *testing.T) {
	s, err := validateSpec(specWith(t, func(map[string]interface{}) {}))
	if err != nil {
		t.Fatal(err)
	}
	if s.Name != "web" || s.MemoryBytes != 67108864 || s.CPUMillis != 500 || s.Pids != 256 || s.Hostname != "web" || len(s.Groups) != 0 {
		t.Fatalf("%+v", s)
	}
	// Optional fields get defaults.
	s, err = validateSpec(specWith(t, func(m map[string]interface{}) {
		for _, k := range []string{"env", "workingDir", "user", "hostname", "limits"} {
			delete(m, k)
		}
	}))
	if err != nil {
		t.Fatal(err)
	}
	if s.WorkingDir != "/" || s.Hostname != "web" || s.MemoryBytes != 0 || s.UID != 0 || s.Env == nil {
		t.Fatalf("%+v", s)
	}
	// Unknown fields are ignored.
	if _, err := validateSpec(specWith(t, func(m map[string]interface{}) { m["future"] = true })); err != nil {
		t.Fatal(err)
	}
}

func TestValidateSpecBad(t *testing.T) {
	long := strings.Repeat("a", 64)
	cases := map[string]func(m map[string]interface{}){
		"no name":          func(m map[string]interface{}) { delete(m, "name") },
		"upper name":       func(m map[string]interface{}) { m["name"] = "Web" },
		"name dash end":    func(m map[string]interface{}) { m["name"] = "web-" },
		"name too long":    func(m map[string]interface{}) { m["name"] = long },
		"name slash":       func(m map[string]interface{}) { m["name"] = "../x" },
		"empty name":       func(m map[string]interface{}) { m["name"] = "" },
		"no disk":          func(m map[string]interface{}) { delete(m, "disk") },
		"disk too long":    func(m map[string]interface{}) { m["disk"] = strings.Repeat("d", 21) },
		"disk slash":       func(m map[string]interface{}) { m["disk"] = "../vda" },
		"fsType":           func(m map[string]interface{}) { m["fsType"] = "xfs" },
		"no argv":          func(m map[string]interface{}) { delete(m, "argv") },
		"empty argv":       func(m map[string]interface{}) { m["argv"] = []string{} },
		"empty argv0":      func(m map[string]interface{}) { m["argv"] = []string{""} },
		"NUL in argv":      func(m map[string]interface{}) { m["argv"] = []string{"/bin/sh", "a\x00b"} },
		"argv not strings": func(m map[string]interface{}) { m["argv"] = []int{1} },
		"env no =":         func(m map[string]interface{}) { m["env"] = []string{"PATH"} },
		"env empty key":    func(m map[string]interface{}) { m["env"] = []string{"=x"} },
		"relative dir":     func(m map[string]interface{}) { m["workingDir"] = "tmp" },
		"negative uid":     func(m map[string]interface{}) { m["user"] = map[string]interface{}{"uid": -1, "gid": 0} },
		"huge gid":         func(m map[string]interface{}) { m["user"] = map[string]interface{}{"uid": 0, "gid": 4294967295} },
		"no uid":           func(m map[string]interface{}) { m["user"] = map[string]interface{}{"gid": 0} },
		"fraction uid":     func(m map[string]interface{}) { m["user"] = map[string]interface{}{"uid": 1.5, "gid": 0} },
		"bad hostname":     func(m map[string]interface{}) { m["hostname"] = "a b" },
		"negative memory":  func(m map[string]interface{}) { m["limits"] = map[string]interface{}{"memoryBytes": -1} },
		"zero cpu":         func(m map[string]interface{}) { m["limits"] = map[string]interface{}{"cpuMillis": 0} },
		"huge pids":        func(m map[string]interface{}) { m["limits"] = map[string]interface{}{"pids": 1 << 40} },
		"no layer":         func(m map[string]interface{}) { delete(m, "writableLayerBytes") },
		"zero layer":       func(m map[string]interface{}) { m["writableLayerBytes"] = 0 },
		"huge layer":       func(m map[string]interface{}) { m["writableLayerBytes"] = int64(1) << 41 },
		"string layer":     func(m map[string]interface{}) { m["writableLayerBytes"] = "64M" },
	}
	for name, edit := range cases {
		var m map[string]interface{}
		json.Unmarshal([]byte(goodSpec), &m)
		edit(m)
		b, _ := json.Marshal(m)
		var c ContainerSpec
		err := decodeParams(b, &c)
		if err == nil {
			_, err = validateSpec(&c)
		}
		if !isBadRequest(err) {
			t.Errorf("%s: got %v, want BAD_REQUEST", name, err)
		}
	}
	if _, err := validateSpec(nil); !isBadRequest(err) {
		t.Error("nil spec")
	}
}

func TestValidateExec(t *testing.T) {
	ok := `{"container":"web","execId":"e-1","argv":["ps"]}`
	var p ExecParams
	decodeParams([]byte(ok), &p)
	e, err := validateExec(&p)
	if err != nil || e.Env != nil || e.WorkingDir != "" || e.User != nil {
		t.Fatalf("%+v %v", e, err)
	}
	for _, bad := range []string{
		`{"execId":"e","argv":["ps"]}`,
		`{"container":"web","argv":["ps"]}`,
		`{"container":"web","execId":"","argv":["ps"]}`,
		`{"container":"web","execId":"a\nb","argv":["ps"]}`,
		`{"container":"web","execId":"` + strings.Repeat("x", 129) + `","argv":["ps"]}`,
		`{"container":"web","execId":"e","argv":[]}`,
		`{"container":"web","execId":"e","argv":["ps"],"workingDir":"x"}`,
		`{"container":"web","execId":"e","argv":["ps"],"user":{"uid":0}}`,
		`{"container":"Web","execId":"e","argv":["ps"]}`,
	} {
		var p ExecParams
		err := decodeParams([]byte(bad), &p)
		if err == nil {
			_, err = validateExec(&p)
		}
		if !isBadRequest(err) {
			t.Errorf("%s: got %v", bad, err)
		}
	}
}

func TestPathFromEnv(t *testing.T) {
	if pathFromEnv(nil) != defaultPath {
		t.Fatal("default")
	}
	if pathFromEnv([]string{"A=1", "PATH=/x", "PATH=/y"}) != "/x" {
		t.Fatal("first PATH wins")
	}
	if pathFromEnv([]string{"PATH="}) != "" {
		t.Fatal("empty PATH")
	}
}
