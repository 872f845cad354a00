package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"runtime"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// goal is a figure's target: the ratio (or, without a baseline, the value)
// compared with limit.
type goal struct {
	// Op is "<=", "<" or ">=".
	Op    string  `json:"op"`
	Limit float64 `json:"limit"`
	// On is "ratio" or "value".
	On string `json:"on"`
}

func (g *goal) String() string {
	if g == nil {
		return "-"
	}
	op := map[string]string{"<=": "≤", ">=": "≥", "<": "<"}[g.Op]
	return fmt.Sprintf("%s %s %s", g.On, op, trimFloat(g.Limit))
}

func (g *goal) met(v float64) bool {
	switch g.Op {
	case "<=":
		return v <= g.Limit
	case "<":
		return v < g.Limit
	default:
		return v >= g.Limit
	}
}

func atMost(limit float64) *goal     { return &goal{Op: "<=", Limit: limit, On: "ratio"} }
func atLeast(limit float64) *goal    { return &goal{Op: ">=", Limit: limit, On: "ratio"} }
func valueBelow(limit float64) *goal { return &goal{Op: "<", Limit: limit, On: "value"} }
func valueAtMost(limit float64) *goal {
	return &goal{Op: "<=", Limit: limit, On: "value"}
}

// row is one measured figure.
type row struct {
	Figure   string   `json:"figure"`
	Metric   string   `json:"metric"`
	Value    float64  `json:"value"`
	Unit     string   `json:"unit"`
	Baseline *float64 `json:"baseline,omitempty"`
	// BaselineName says what the baseline is.
	BaselineName string   `json:"baseline_name,omitempty"`
	Ratio        *float64 `json:"ratio,omitempty"`
	Goal         *goal    `json:"goal,omitempty"`
	Pass         *bool    `json:"pass,omitempty"`
	Note         string   `json:"note,omitempty"`
}

// figureResult is what one figure produced.
type figureResult struct {
	Figure  string            `json:"figure"`
	Seconds float64           `json:"seconds"`
	Sizes   map[string]string `json:"sizes,omitempty"`
	Error   string            `json:"error,omitempty"`
	Rows    []row             `json:"rows"`
}

// report is the whole run.
type report struct {
	Started time.Time       `json:"started"`
	Machine machine         `json:"machine"`
	Command string          `json:"command"`
	Figures []*figureResult `json:"figures"`
}

// machine describes where the figures were measured.
type machine struct {
	CPUs      int    `json:"cpus"`
	CPUModel  string `json:"cpu_model"`
	MemoryGiB string `json:"memory_gib"`
	Load      string `json:"load_average,omitempty"`
	GoVersion string `json:"go_version"`
	OS        string `json:"os"`
}

func describeMachine() machine {
	m := machine{CPUs: runtime.NumCPU(), GoVersion: runtime.Version(), OS: runtime.GOOS + "/" + runtime.GOARCH}
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
		f.Close()
	}
	if raw, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, line := range strings.Split(string(raw), "\n") {
			if strings.HasPrefix(line, "MemTotal:") {
				f := strings.Fields(line)
				if len(f) >= 2 {
					kb, _ := strconv.ParseFloat(f[1], 64)
					m.MemoryGiB = fmt.Sprintf("%.1f", kb/(1<<20))
				}
			}
		}
	}
	if raw, err := os.ReadFile("/proc/loadavg"); err == nil {
		f := strings.Fields(string(raw))
		if len(f) >= 3 {
			m.Load = strings.Join(f[:3], " ")
		}
	}
	return m
}

// add appends a row, computing the ratio (value ÷ baseline) and the
// verdict.
func (f *figureResult) add(r row) {
	if r.Baseline != nil && *r.Baseline != 0 && r.Ratio == nil {
		ratio := r.Value / *r.Baseline
		r.Ratio = &ratio
	}
	if r.Goal != nil {
		v := r.Value
		if r.Goal.On == "ratio" {
			if r.Ratio == nil {
				r.Goal = nil
				f.Rows = append(f.Rows, r)
				return
			}
			v = *r.Ratio
		}
		pass := r.Goal.met(v)
		r.Pass = &pass
	}
	f.Rows = append(f.Rows, r)
}

func ptr[T any](v T) *T { return &v }

func (r *report) failedFigures() int {
	n := 0
	for _, f := range r.Figures {
		if f.Error != "" {
			n++
		}
	}
	return n
}

func (r *report) printTable(w io.Writer) {
	fmt.Fprintf(w, "akvsync-bench  %s  %d CPUs (%s), %s GiB, load %s, %s\n", r.Started.UTC().Format(time.RFC3339),
		r.Machine.CPUs, r.Machine.CPUModel, r.Machine.MemoryGiB, r.Machine.Load, r.Machine.GoVersion)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "figure\tmetric\tvalue\tbaseline\tratio\tgoal\tresult\t")
	for _, f := range r.Figures {
		if f.Error != "" {
			fmt.Fprintf(tw, "%s\t(error)\t\t\t\t\tERROR\t\n", f.Figure)
		}
		for _, x := range f.Rows {
			base, ratio, verdict := "-", "-", "-"
			if x.Baseline != nil {
				base = formatValue(*x.Baseline, x.Unit)
				if x.BaselineName != "" {
					base += " (" + x.BaselineName + ")"
				}
			}
			if x.Ratio != nil {
				ratio = fmt.Sprintf("%.3f", *x.Ratio)
			}
			if x.Pass != nil {
				verdict = map[bool]string{true: "pass", false: "FAIL"}[*x.Pass]
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n", f.Figure, x.Metric, formatValue(x.Value, x.Unit), base, ratio, x.Goal, verdict)
		}
	}
	_ = tw.Flush()
	for _, f := range r.Figures {
		if f.Error != "" {
			fmt.Fprintf(w, "%s: error: %s\n", f.Figure, f.Error)
		}
		for _, x := range f.Rows {
			if x.Note != "" {
				fmt.Fprintf(w, "%s %s: %s\n", f.Figure, x.Metric, x.Note)
			}
		}
	}
}

func (r *report) writeJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

func formatValue(v float64, unit string) string {
	switch unit {
	case "s":
		return fmt.Sprintf("%.2f s", v)
	case "ms":
		return fmt.Sprintf("%.2f ms", v)
	case "MB", "bytes/key":
		return fmt.Sprintf("%.1f %s", v, unit)
	case "keys/s":
		return fmt.Sprintf("%.0f keys/s", v)
	case "%":
		return fmt.Sprintf("%.3f %%", v)
	case "":
		return trimFloat(v)
	}
	return trimFloat(v) + " " + unit
}

func trimFloat(v float64) string {
	if v == math.Trunc(v) && math.Abs(v) < 1e15 {
		return strconv.FormatInt(int64(v), 10)
	}
	return strconv.FormatFloat(v, 'f', 3, 64)
}
