// Package argocd runs exokey's Argo CD health checks
// (dist/argocd/resource_customizations) the way Argo CD does: the Lua
// script with the object as the global obj, in gopher-lua, the
// interpreter Argo CD embeds, returning a table with status and message.
package argocd

import (
	"fmt"
	"os"
	"path/filepath"

	lua "github.com/yuin/gopher-lua"
)

// Customizations is dist/argocd/resource_customizations from the
// repository's root.
const Customizations = "dist/argocd/resource_customizations"

// Health is what a health check says of an object.
type Health struct {
	Status  string `json:"status"`
	Message string `json:"message"`
}

// ScriptPath is the health check of a kind of group under root.
func ScriptPath(root, group, kind string) string {
	return filepath.Join(root, Customizations, group, kind, "health.lua")
}

// Evaluate runs the health script at path on obj (an object as JSON
// decodes it: maps, slices, strings, float64s, bools).
func Evaluate(path string, obj map[string]any) (Health, error) {
	script, err := os.ReadFile(path)
	if err != nil {
		return Health{}, err
	}
	L := lua.NewState(lua.Options{SkipOpenLibs: true})
	defer L.Close()
	// The libraries Argo CD opens for health scripts.
	for _, lib := range []struct {
		name string
		open lua.LGFunction
	}{{lua.BaseLibName, lua.OpenBase}, {lua.TabLibName, lua.OpenTable}, {lua.StringLibName, lua.OpenString}, {lua.MathLibName, lua.OpenMath}} {
		L.Push(L.NewFunction(lib.open))
		L.Push(lua.LString(lib.name))
		L.Call(1, 0)
	}
	L.SetGlobal("obj", toLua(L, obj))
	if err := L.DoString(string(script)); err != nil {
		return Health{}, fmt.Errorf("%s: %w", path, err)
	}
	result, ok := L.Get(-1).(*lua.LTable)
	if !ok {
		return Health{}, fmt.Errorf("%s returned %s, want a table", path, L.Get(-1).Type())
	}
	return Health{Status: lua.LVAsString(result.RawGetString("status")), Message: lua.LVAsString(result.RawGetString("message"))}, nil
}

// toLua converts a decoded JSON value to Lua: objects and arrays become
// tables (arrays from 1), numbers LNumber, null nil.
func toLua(L *lua.LState, v any) lua.LValue {
	switch v := v.(type) {
	case map[string]any:
		t := L.NewTable()
		for k, e := range v {
			t.RawSetString(k, toLua(L, e))
		}
		return t
	case []any:
		t := L.NewTable()
		for _, e := range v {
			t.Append(toLua(L, e))
		}
		return t
	case string:
		return lua.LString(v)
	case bool:
		return lua.LBool(v)
	case float64:
		return lua.LNumber(v)
	case int64:
		return lua.LNumber(v)
	case int:
		return lua.LNumber(v)
	}
	return lua.LNil
}
