// Command argocd-lua runs an Argo CD resource health script on one Kubernetes object the way
// Argo CD's application controller does, and prints the health it yields.
//
//	argocd-lua [-open-libs] health.lua < object.json
//
// stdout: the health as Argo CD stores it, {"status": ..., "message": ...} (both omitted when
// empty, as in gitops-engine's HealthStatus). Exit status 0 when the script ran; 2 when Argo CD
// would have failed to run it (stdout then holds the Unknown health Argo CD shows, with the
// error as its message); 1 for bad usage or an object that is not JSON.
//
// It follows, at argoproj/argo-cd commit 37ee0097cf851bc2dd7665fc081bbce61a7e836e:
//   - util/lua/lua.go: VM.runLuaWithResourceActionParameters (the libraries opened, the
//     1 s timeout, the globals obj and actionParams), VM.ExecuteHealthLua (how the returned
//     table becomes a HealthStatus) and decodeValue (how the object becomes Lua values);
//   - util/lua/oslib_safe.go: the os library reduced to os.time and os.date;
//   - gitops-engine/pkg/health/health.go: GetResourceHealth (an object being deleted is
//     Progressing before any script runs; a script error is Unknown with the error's text).
//
// A health script from argocd-cm runs with UseOpenLibs false unless the ConfigMap sets
// resource.customizations.useOpenLibs.<group>_<kind>: then gopher-lua's standard libraries
// (string, math, ...) are not opened, only package, base, table and the safe os. -open-libs
// mirrors that setting. Argo CD's cache of compiled scripts is left out: it changes only how
// often a script is compiled, not what it returns.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	lua "github.com/yuin/gopher-lua"
)

// Health is gitops-engine's health.HealthStatus.
type Health struct {
	Status  string `json:"status,omitempty"`
	Message string `json:"message,omitempty"`
}

const (
	incorrectReturnType = "expect %s output from Lua script, not %s"
	invalidHealthStatus = "Lua returned an invalid health status"
	// gitops-engine/pkg/sync/hook/hook.go HookFinalizer.
	hookFinalizer = "argocd.argoproj.io/hook-finalizer"
)

var validHealthStatus = map[string]bool{
	"Unknown": true, "Progressing": true, "Suspended": true, "Healthy": true, "Degraded": true, "Missing": true,
}

func main() {
	openLibs := flag.Bool("open-libs", false, "open gopher-lua's standard libraries (argocd-cm useOpenLibs)")
	flag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: argocd-lua [-open-libs] health.lua < object.json")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() != 1 {
		flag.Usage()
		os.Exit(1)
	}
	script, err := os.ReadFile(flag.Arg(0))
	if err != nil {
		fail(err)
	}
	input, err := io.ReadAll(os.Stdin)
	if err != nil {
		fail(err)
	}
	obj, err := decodeObject(input)
	if err != nil {
		fail(fmt.Errorf("the object on stdin is not a JSON object: %w", err))
	}
	health, err := resourceHealth(obj, string(script), *openLibs)
	code := 0
	if err != nil {
		// GetResourceHealth: the error becomes the message of an Unknown health.
		health = &Health{Status: "Unknown", Message: err.Error()}
		fmt.Fprintln(os.Stderr, "argocd-lua:", err)
		code = 2
	}
	out := json.NewEncoder(os.Stdout)
	out.SetEscapeHTML(false)
	if err := out.Encode(health); err != nil {
		fail(err)
	}
	os.Exit(code)
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "argocd-lua:", err)
	os.Exit(1)
}

// decodeObject reads JSON as apimachinery's unstructured decoding does: integers as int64,
// other numbers as float64 (never json.Number, which decodeValue would turn into a string).
func decodeObject(data []byte) (map[string]any, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var obj map[string]any
	if err := dec.Decode(&obj); err != nil {
		return nil, err
	}
	if obj == nil {
		return nil, errors.New("null")
	}
	return convertNumbers(obj).(map[string]any), nil
}

func convertNumbers(value any) any {
	switch v := value.(type) {
	case map[string]any:
		for key, item := range v {
			v[key] = convertNumbers(item)
		}
	case []any:
		for i, item := range v {
			v[i] = convertNumbers(item)
		}
	case json.Number:
		if i, err := v.Int64(); err == nil {
			return i
		}
		f, _ := v.Float64()
		return f
	}
	return value
}

// resourceHealth is gitops-engine's GetResourceHealth with the script as the health override.
func resourceHealth(obj map[string]any, script string, openLibs bool) (*Health, error) {
	if metadata, ok := obj["metadata"].(map[string]any); ok && metadata["deletionTimestamp"] != nil {
		if !hasFinalizer(metadata, hookFinalizer) {
			return &Health{Status: "Progressing", Message: "Pending deletion"}, nil
		}
	}
	return executeHealthLua(obj, script, openLibs)
}

func hasFinalizer(metadata map[string]any, name string) bool {
	finalizers, _ := metadata["finalizers"].([]any)
	for _, f := range finalizers {
		if f == name {
			return true
		}
	}
	return false
}

// runLua is VM.runLuaWithResourceActionParameters without action parameters.
func runLua(obj map[string]any, script string, openLibs bool) (*lua.LState, error) {
	l := lua.NewState(lua.Options{SkipOpenLibs: !openLibs})
	defer l.Close()
	for _, pair := range []struct {
		n string
		f lua.LGFunction
	}{
		{lua.LoadLibName, lua.OpenPackage},
		{lua.BaseLibName, lua.OpenBase},
		{lua.TabLibName, lua.OpenTable},
		{lua.OsLibName, openSafeOs},
	} {
		if err := l.CallByParam(lua.P{Fn: l.NewFunction(pair.f), NRet: 0, Protect: true}, lua.LString(pair.n)); err != nil {
			panic(err)
		}
	}
	l.PreloadModule(lua.OsLibName, safeOsLoader)

	ctx, cancel := context.WithTimeout(context.Background(), 1*time.Second)
	defer cancel()
	l.SetContext(ctx)

	l.SetGlobal("actionParams", l.CreateTable(0, 0))
	l.SetGlobal("obj", decodeValue(l, obj))

	fn, err := l.LoadString(script)
	if err == nil {
		l.Push(fn)
		err = l.PCall(0, lua.MultRet, nil)
	}
	// Argo CD drops the Lua stack trace of a run-time error: the message reaches the user.
	var apiErr *lua.ApiError
	if errors.As(err, &apiErr) && apiErr.Type == lua.ApiErrorRun {
		apiErr.StackTrace = ""
		err = apiErr
	}
	return l, err
}

// executeHealthLua is VM.ExecuteHealthLua.
func executeHealthLua(obj map[string]any, script string, openLibs bool) (*Health, error) {
	l, err := runLua(obj, script, openLibs)
	if err != nil {
		return nil, err
	}
	returnValue := l.Get(-1)
	switch returnValue.Type() {
	case lua.LTTable:
		jsonBytes, err := encode(returnValue)
		if err != nil {
			return nil, err
		}
		health := &Health{}
		if err := json.Unmarshal(jsonBytes, health); err != nil {
			// Argo CD means "an empty table, encoded as []", but errors.As matches any type
			// error, so a status or message that is not a string gives an empty health too.
			var typeError *json.UnmarshalTypeError
			if errors.As(err, &typeError) {
				return &Health{}, nil
			}
			return nil, err
		}
		if !validHealthStatus[health.Status] {
			return &Health{Status: "Unknown", Message: invalidHealthStatus}, nil
		}
		return health, nil
	case lua.LTNil:
		return &Health{}, nil
	}
	return nil, fmt.Errorf(incorrectReturnType, "table", returnValue.Type().String())
}

// decodeValue is util/lua/lua.go decodeValue.
func decodeValue(l *lua.LState, value any) lua.LValue {
	switch converted := value.(type) {
	case bool:
		return lua.LBool(converted)
	case float64:
		return lua.LNumber(converted)
	case string:
		return lua.LString(converted)
	case json.Number:
		return lua.LString(converted)
	case int:
		return lua.LNumber(converted)
	case int32:
		return lua.LNumber(converted)
	case int64:
		return lua.LNumber(converted)
	case []any:
		arr := l.CreateTable(len(converted), 0)
		for _, item := range converted {
			arr.Append(decodeValue(l, item))
		}
		return arr
	case map[string]any:
		tbl := l.CreateTable(0, len(converted))
		for key, item := range converted {
			tbl.RawSetH(lua.LString(key), decodeValue(l, item))
		}
		return tbl
	case nil:
		return lua.LNil
	}
	return lua.LNil
}

// encode is luajson.Encode of layeh.com/gopher-json v0.0.0-20190114024228-97fed8db8427, the
// encoder Argo CD turns the returned table into JSON with: an empty table is [], a table with
// keys 1..n an array, one with string keys an object, anything else an error.
func encode(value lua.LValue) ([]byte, error) {
	return json.Marshal(jsonValue{value, map[*lua.LTable]bool{}})
}

type jsonValue struct {
	lua.LValue
	visited map[*lua.LTable]bool
}

func (j jsonValue) MarshalJSON() ([]byte, error) {
	switch converted := j.LValue.(type) {
	case lua.LBool:
		return json.Marshal(bool(converted))
	case lua.LNumber:
		return json.Marshal(float64(converted))
	case *lua.LNilType:
		return []byte(`null`), nil
	case lua.LString:
		return json.Marshal(string(converted))
	case *lua.LTable:
		if j.visited[converted] {
			return nil, errors.New("cannot encode recursively nested tables to JSON")
		}
		j.visited[converted] = true
		key, value := converted.Next(lua.LNil)
		switch key.Type() {
		case lua.LTNil:
			return []byte(`[]`), nil
		case lua.LTNumber:
			arr := make([]jsonValue, 0, converted.Len())
			expected := lua.LNumber(1)
			for key != lua.LNil {
				if key.Type() != lua.LTNumber {
					return nil, errors.New("cannot encode mixed or invalid key types")
				}
				if expected != key {
					return nil, errors.New("cannot encode sparse array")
				}
				arr = append(arr, jsonValue{value, j.visited})
				expected++
				key, value = converted.Next(key)
			}
			return json.Marshal(arr)
		case lua.LTString:
			obj := make(map[string]jsonValue)
			for key != lua.LNil {
				if key.Type() != lua.LTString {
					return nil, errors.New("cannot encode mixed or invalid key types")
				}
				obj[key.String()] = jsonValue{value, j.visited}
				key, value = converted.Next(key)
			}
			return json.Marshal(obj)
		}
		return nil, errors.New("cannot encode mixed or invalid key types")
	}
	return nil, fmt.Errorf("cannot encode %s to JSON", j.LValue.Type().String())
}

// The safe os library of util/lua/oslib_safe.go (itself taken from gopher-lua): os.time and
// os.date only, so a script can neither exit nor touch files or the environment.

func openSafeOs(l *lua.LState) int {
	l.Push(l.RegisterModule(lua.TabLibName, osFuncs))
	return 1
}

func safeOsLoader(l *lua.LState) int {
	l.Push(l.SetFuncs(l.NewTable(), osFuncs))
	return 1
}

var osFuncs = map[string]lua.LGFunction{"time": osTime, "date": osDate}

func osTime(l *lua.LState) int {
	if l.GetTop() == 0 {
		l.Push(lua.LNumber(time.Now().Unix()))
		return 1
	}
	tbl := l.CheckTable(1)
	t := time.Date(getIntField(tbl, "year", -1), time.Month(getIntField(tbl, "month", -1)),
		getIntField(tbl, "day", -1), getIntField(tbl, "hour", 12), getIntField(tbl, "min", 0),
		getIntField(tbl, "sec", 0), 0, time.Local)
	l.Push(lua.LNumber(t.Unix()))
	return 1
}

func getIntField(tb *lua.LTable, key string, v int) int {
	if ln, ok := tb.RawGetString(key).(lua.LNumber); ok {
		return int(ln)
	}
	return v
}

func osDate(l *lua.LState) int {
	t := time.Now()
	cfmt := "%c"
	if l.GetTop() >= 1 {
		cfmt = l.CheckString(1)
		if strings.HasPrefix(cfmt, "!") {
			t = time.Now().UTC()
			cfmt = strings.TrimLeft(cfmt, "!")
		}
		if l.GetTop() >= 2 {
			t = time.Unix(l.CheckInt64(2), 0)
		}
		if strings.HasPrefix(cfmt, "*t") {
			ret := l.NewTable()
			ret.RawSetString("year", lua.LNumber(t.Year()))
			ret.RawSetString("month", lua.LNumber(t.Month()))
			ret.RawSetString("day", lua.LNumber(t.Day()))
			ret.RawSetString("hour", lua.LNumber(t.Hour()))
			ret.RawSetString("min", lua.LNumber(t.Minute()))
			ret.RawSetString("sec", lua.LNumber(t.Second()))
			ret.RawSetString("wday", lua.LNumber(t.Weekday()+1))
			ret.RawSetString("yday", lua.LNumber(0))
			ret.RawSetString("isdst", lua.LFalse)
			l.Push(ret)
			return 1
		}
	}
	l.Push(lua.LString(strftime(t, cfmt)))
	return 1
}

var cDateFlagToGo = map[byte]string{
	'a': "mon", 'A': "Monday", 'b': "Jan", 'B': "January", 'c': "02 Jan 06 15:04 MST", 'd': "02",
	'F': "2006-01-02", 'H': "15", 'I': "03", 'm': "01", 'M': "04", 'p': "PM", 'P': "pm", 'S': "05",
	'x': "15/04/05", 'X': "15:04:05", 'y': "06", 'Y': "2006", 'z': "-0700", 'Z': "MST",
}

// strftime is oslib_safe.go's: %% is a literal %, a known flag its Go layout, %w the weekday,
// any other flag is kept as written, and a % at the very end stays.
func strftime(t time.Time, cfmt string) string {
	var buf []byte
	for i := 0; i < len(cfmt); i++ {
		c := cfmt[i]
		if c != '%' {
			buf = append(buf, c)
			continue
		}
		if i == len(cfmt)-1 {
			buf = append(buf, '%')
			break
		}
		i++
		c = cfmt[i]
		switch {
		case c == '%':
			buf = append(buf, '%')
		case cDateFlagToGo[c] != "":
			buf = append(buf, t.Format(cDateFlagToGo[c])...)
		case c == 'w':
			buf = append(buf, strconv.Itoa(int(t.Weekday()))...)
		default:
			buf = append(buf, '%', c)
		}
	}
	return string(buf)
}
