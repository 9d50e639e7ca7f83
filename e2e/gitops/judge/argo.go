package main

// Argo CD runs a health check configured in argocd-cm
// (`resource.customizations.health.<group>_<Kind>`) in a gopher-lua state opened without the
// standard libraries (`useOpenLibs` is off unless argocd-cm turns it on for the kind): only the
// package, base and table libraries and a safe `os` with `time` (through `require`), and `obj` set to the object
// decoded from the API server; the script has a second, and its result must be a table whose
// `status` is one of Argo CD's health codes, else the health is Unknown. This file sets the VM up
// the same way (Argo CD v3.6.1's util/lua), so a check that leans on `string`, `math` or
// `os.execute` fails here as it fails in Argo CD.

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	lua "github.com/yuin/gopher-lua"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	luajson "layeh.com/gopher-json"
)

// Health is Argo CD's health of one resource.
type Health struct {
	Status  string `json:"status"`
	Message string `json:"message"`
}

var healthCodes = map[string]bool{
	"Unknown": true, "Progressing": true, "Suspended": true, "Healthy": true, "Degraded": true, "Missing": true,
}

// healthChecks are the Lua checks by `<group>/<Kind>`, as Argo CD keys its resource overrides.
type healthChecks map[string]string

// loadHealthChecks reads `<kind>-health.lua` for each of modelcycle's kinds.
func loadHealthChecks(dir string) (healthChecks, error) {
	checks := healthChecks{}
	for _, kind := range []string{"Model", "ModelVersion", "RetrainPolicy"} {
		path := filepath.Join(dir, strings.ToLower(kind)+"-health.lua")
		script, err := os.ReadFile(path)
		if os.IsNotExist(err) {
			continue
		}
		if err != nil {
			return nil, err
		}
		checks["modelcycle.io/"+kind] = string(script)
	}
	if len(checks) == 0 {
		return nil, fmt.Errorf("no health check in %s", dir)
	}
	return checks, nil
}

// health is Argo CD's verdict on obj, nil when no check is configured for its kind.
func (checks healthChecks) health(obj *unstructured.Unstructured) (*Health, error) {
	// gitops-engine looks at deletion before any check.
	if obj.GetDeletionTimestamp() != nil {
		return &Health{Status: "Progressing", Message: "Pending deletion"}, nil
	}
	gvk := obj.GroupVersionKind()
	script, ok := checks[gvk.Group+"/"+gvk.Kind]
	if !ok {
		return nil, nil
	}
	return runHealthCheck(obj, script)
}

func runHealthCheck(obj *unstructured.Unstructured, script string) (*Health, error) {
	state := lua.NewState(lua.Options{SkipOpenLibs: true})
	defer state.Close()
	for _, lib := range []struct {
		name string
		open lua.LGFunction
	}{
		{lua.LoadLibName, lua.OpenPackage},
		{lua.BaseLibName, lua.OpenBase},
		{lua.TabLibName, lua.OpenTable},
		{lua.OsLibName, openSafeOs},
	} {
		if err := state.CallByParam(lua.P{Fn: state.NewFunction(lib.open), NRet: 0, Protect: true}, lua.LString(lib.name)); err != nil {
			return nil, err
		}
	}
	state.PreloadModule(lua.OsLibName, func(l *lua.LState) int {
		l.Push(l.SetFuncs(l.NewTable(), safeOs))
		return 1
	})
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	state.SetContext(ctx)
	// Health checks get no action parameters, but the global exists.
	state.SetGlobal("actionParams", state.CreateTable(0, 0))
	state.SetGlobal("obj", toLua(state, obj.Object))
	if err := state.DoString(script); err != nil {
		return nil, err
	}
	result := state.Get(-1)
	if result.Type() == lua.LTNil {
		// A check that returns nothing gives no health, as in Argo CD.
		return nil, nil
	}
	if result.Type() != lua.LTTable {
		return nil, fmt.Errorf("expect table output from Lua script, not %s", result.Type())
	}
	encoded, err := luajson.Encode(result)
	if err != nil {
		return nil, err
	}
	health := &Health{}
	if string(encoded) == "[]" {
		// An empty table encodes as an empty array: Argo CD gives an empty health.
		return health, nil
	}
	if err := json.Unmarshal(encoded, health); err != nil {
		return nil, err
	}
	if !healthCodes[health.Status] {
		return &Health{Status: "Unknown", Message: "Lua returned an invalid health status"}, nil
	}
	return health, nil
}

// The safe part of `os` Argo CD lets a check use: the time, no files, no processes.
var safeOs = map[string]lua.LGFunction{
	"time": func(l *lua.LState) int {
		l.Push(lua.LNumber(time.Now().Unix()))
		return 1
	},
}

// openSafeOs is Argo CD's OpenSafeOs, which registers the functions into the `table` module, so
// a check reaches `os.time` only through `local os = require("os")` (the preloaded module).
func openSafeOs(l *lua.LState) int {
	l.Push(l.RegisterModule(lua.TabLibName, safeOs))
	return 1
}

// toLua converts the decoded object as Argo CD does: numbers (integers included) to Lua
// numbers, maps to tables, lists to sequences, null to nil.
func toLua(l *lua.LState, value interface{}) lua.LValue {
	switch v := value.(type) {
	case bool:
		return lua.LBool(v)
	case float64:
		return lua.LNumber(v)
	case int64:
		return lua.LNumber(v)
	case int:
		return lua.LNumber(v)
	case string:
		return lua.LString(v)
	case []interface{}:
		table := l.CreateTable(len(v), 0)
		for _, item := range v {
			table.Append(toLua(l, item))
		}
		return table
	case map[string]interface{}:
		table := l.CreateTable(0, len(v))
		for key, item := range v {
			table.RawSetH(lua.LString(key), toLua(l, item))
		}
		return table
	default:
		return lua.LNil
	}
}
