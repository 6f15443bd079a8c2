package main

import (
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// clockTicks is the unit of /proc/<pid>/stat's times (USER_HZ).
const clockTicks = 100

// cpuSeconds reads the CPU time, user and system, of the processes that
// share the machine during a run: the apiserver and etcd (the bench's
// children), the bench itself (the emulator and the watch, and in a
// reference row the reference controller) and the manager, if one runs.
// On two cores they compete: where the CPU goes says what binds a row.
func cpuSeconds(m *managerProcess) map[string]float64 {
	out := map[string]float64{}
	self := os.Getpid()
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, path := range stats {
		pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(path)))
		comm, ppid, seconds, ok := procStat(path)
		if !ok {
			continue
		}
		switch {
		case pid == self:
			out["bench"] = seconds
		case m != nil && pid == m.cmd.Process.Pid:
			out["manager"] = seconds
		case ppid == self && (comm == "kube-apiserver" || comm == "etcd"):
			out[comm] += seconds
		}
	}
	return out
}

// procStat parses /proc/<pid>/stat: the command, the parent and the
// process's user and system time in seconds.
func procStat(path string) (comm string, ppid int, seconds float64, ok bool) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return "", 0, 0, false
	}
	s := string(raw)
	open, closing := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if open < 0 || closing < open {
		return "", 0, 0, false
	}
	// After the command: state, ppid, ... utime and stime are the 12th and
	// 13th fields from there (14th and 15th of the line).
	fields := strings.Fields(s[closing+1:])
	if len(fields) < 13 {
		return "", 0, 0, false
	}
	ppid, _ = strconv.Atoi(fields[1])
	utime, _ := strconv.ParseFloat(fields[11], 64)
	stime, _ := strconv.ParseFloat(fields[12], 64)
	return s[open+1 : closing], ppid, (utime + stime) / clockTicks, true
}

// cpuSince is the CPU each process used since before.
func cpuSince(before, after map[string]float64) map[string]float64 {
	out := map[string]float64{}
	for name, v := range after {
		out[name] = round(v - before[name])
	}
	return out
}

func formatCPU(cpu map[string]float64, wall float64) string {
	var parts []string
	total := 0.0
	for _, name := range slices.Sorted(maps.Keys(cpu)) {
		parts = append(parts, fmt.Sprintf("%s %.1f s", name, cpu[name]))
		total += cpu[name]
	}
	return fmt.Sprintf("%s: %.1f s of %.1f s on %d cores", strings.Join(parts, ", "), total, wall*float64(runtimeCPUs()), runtimeCPUs())
}
