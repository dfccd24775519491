package backtest

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/greenq/greenq"
	"github.com/greenq/greenq/forecast"
)

// Job is one line of the workload file.
type Job struct {
	ID     string
	Submit time.Time
	// Duration is the run time the job needs (duration_s).
	Duration time.Duration
	// Estimate is the run time the planner is told, when it differs from
	// Duration (a user's misestimate; in memory only, no CSV column). Zero
	// means Duration. The job still runs for Duration from its planned
	// start: a short estimate runs past its last planned segment.
	Estimate time.Duration
	GPUs     int
	Deadline time.Time
	// Regions allowed, in preference order; empty means every region.
	Regions       []string
	Interruptible bool
	// PowerW is the draw per GPU in watts. Default 300.
	PowerW float64
	// Line is the job's line in its file, for error messages; 0 when the
	// job was built in memory.
	Line int
}

// planned returns the run time the planner is told (see Job.Estimate).
func (j *Job) planned() time.Duration {
	if j.Estimate > 0 {
		return j.Estimate
	}
	return j.Duration
}

// DefaultPowerW is the per-GPU draw of a job whose power_w is empty.
const DefaultPowerW = 300

// ParseError is a problem at one place of an input file. It unwraps to a
// *greenq.Error with code invalid_argument, so the command exits 2.
type ParseError struct {
	File         string
	Line, Column int
	Err          error
}

// Error implements error as file:line:column: cause.
func (e *ParseError) Error() string {
	return fmt.Sprintf("%s:%d:%d: %v", e.File, e.Line, e.Column, e.Err)
}

// Unwrap returns the cause.
func (e *ParseError) Unwrap() error { return e.Err }

// csvFile wraps encoding/csv with positions for error messages.
type csvFile struct {
	name   string
	r      *csv.Reader
	header []string
	rec    []string
}

func openCSV(r io.Reader, name string) (*csvFile, error) {
	cr := csv.NewReader(r)
	cr.ReuseRecord = true
	cr.TrimLeadingSpace = true
	f := &csvFile{name: name, r: cr}
	h, err := cr.Read()
	if err != nil {
		if errors.Is(err, io.EOF) {
			return nil, &ParseError{File: name, Line: 1, Column: 1, Err: greenq.Invalid("header", "the file is empty")}
		}
		return nil, f.csvErr(err)
	}
	for i, s := range h {
		s = strings.TrimSpace(s)
		if i == 0 {
			s = strings.TrimPrefix(s, "\ufeff")
		}
		f.header = append(f.header, strings.ToLower(s))
	}
	return f, nil
}

func (f *csvFile) csvErr(err error) error {
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		return &ParseError{File: f.name, Line: pe.Line, Column: pe.Column, Err: greenq.Invalid("csv", "%v", pe.Err)}
	}
	return fmt.Errorf("read %s: %w", f.name, err)
}

// next reads one record; io.EOF at the end.
func (f *csvFile) next() error {
	rec, err := f.r.Read()
	if err != nil {
		if errors.Is(err, io.EOF) {
			return io.EOF
		}
		return f.csvErr(err)
	}
	f.rec = rec
	return nil
}

// errAt reports a bad value in field i of the current record.
func (f *csvFile) errAt(i int, format string, args ...any) error {
	line, col := f.r.FieldPos(i)
	return &ParseError{File: f.name, Line: line, Column: col, Err: greenq.Invalid(f.header[i], format, args...)}
}

func (f *csvFile) line() int {
	line, _ := f.r.FieldPos(0)
	return line
}

// columns maps required and optional column names to their index; it
// rejects unknown and missing columns.
func (f *csvFile) columns(required, optional []string) (map[string]int, error) {
	idx := map[string]int{}
	for i, h := range f.header {
		if !slices.Contains(required, h) && !slices.Contains(optional, h) {
			return nil, &ParseError{File: f.name, Line: 1, Column: i + 1, Err: greenq.Invalid("header", "unknown column %q (want %s)", h, strings.Join(append(slices.Clone(required), optional...), ","))}
		}
		if _, dup := idx[h]; dup {
			return nil, &ParseError{File: f.name, Line: 1, Column: i + 1, Err: greenq.Invalid("header", "column %q appears twice", h)}
		}
		idx[h] = i
	}
	for _, r := range required {
		if _, ok := idx[r]; !ok {
			return nil, &ParseError{File: f.name, Line: 1, Column: 1, Err: greenq.Invalid("header", "missing column %q (want %s)", r, strings.Join(required, ","))}
		}
	}
	return idx, nil
}

func parseTime(s string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339Nano, strings.TrimSpace(s))
	if err != nil {
		return time.Time{}, errors.New("not an RFC 3339 time such as 2023-01-01T00:00:00Z")
	}
	return t.UTC(), nil
}

func parseIntensity(s string) (float64, error) {
	v, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if err != nil || math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
		return 0, errors.New("not a finite number ≥ 0 (gCO2e/kWh)")
	}
	return v, nil
}

// ReadCarbon reads one region's history: header time_utc,gco2_per_kwh, times
// strictly increasing, any step. Each value holds until the next time; the
// last one for the step before it (1h when there is only one row). name is
// used in error messages.
func ReadCarbon(r io.Reader, name, region string) (forecast.Series, error) {
	s := forecast.Series{Region: region, Zone: region, Source: "file", Signal: forecast.SignalAverage}
	f, err := openCSV(r, name)
	if err != nil {
		return s, err
	}
	if len(f.header) != 2 || f.header[0] != "time_utc" || f.header[1] != "gco2_per_kwh" {
		return s, &ParseError{File: name, Line: 1, Column: 1, Err: greenq.Invalid("header", "got %q, want time_utc,gco2_per_kwh", strings.Join(f.header, ","))}
	}
	f.r.FieldsPerRecord = 2
	var times []time.Time
	var vals []float64
	for {
		if err := f.next(); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			return s, err
		}
		t, err := parseTime(f.rec[0])
		if err != nil {
			return s, f.errAt(0, "%v", err)
		}
		if n := len(times); n > 0 && !t.After(times[n-1]) {
			return s, f.errAt(0, "time %s is not after the previous row's %s", t.Format(time.RFC3339), times[n-1].Format(time.RFC3339))
		}
		v, err := parseIntensity(f.rec[1])
		if err != nil {
			return s, f.errAt(1, "%v", err)
		}
		times = append(times, t)
		vals = append(vals, v)
	}
	if len(times) == 0 {
		return s, &ParseError{File: name, Line: 2, Column: 1, Err: greenq.Invalid("time_utc", "no data rows")}
	}
	s.Points = pointsFromSteps(times, vals, forecast.KindActual)
	return s, nil
}

// pointsFromSteps turns values at increasing times into contiguous points.
func pointsFromSteps(times []time.Time, vals []float64, kind forecast.PointKind) []forecast.Point {
	pts := make([]forecast.Point, len(times))
	for i, t := range times {
		var end time.Time
		switch {
		case i+1 < len(times):
			end = times[i+1]
		case i > 0:
			end = t.Add(t.Sub(times[i-1]))
		default:
			end = t.Add(time.Hour)
		}
		pts[i] = forecast.Point{Start: t, End: end, GCO2PerKWh: vals[i], Kind: kind}
	}
	return pts
}

// ReadCarbonDir reads every <region>.csv in dir, keyed by region.
func ReadCarbonDir(dir string) (map[string]forecast.Series, error) {
	out := map[string]forecast.Series{}
	err := eachCSV(dir, func(path, region string) error {
		fh, err := os.Open(path)
		if err != nil {
			return fmt.Errorf("open carbon file: %w", err)
		}
		defer fh.Close()
		s, err := ReadCarbon(fh, path, region)
		if err != nil {
			return err
		}
		out[region] = s
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, greenq.Invalid("carbon", "%s holds no <region>.csv file", dir)
	}
	return out, nil
}

func eachCSV(dir string, fn func(path, region string) error) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("list %s: %w", dir, err)
	}
	for _, e := range ents {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".csv") {
			continue
		}
		if err := fn(filepath.Join(dir, e.Name()), strings.TrimSuffix(e.Name(), ".csv")); err != nil {
			return err
		}
	}
	return nil
}

var (
	workloadRequired = []string{"id", "submit_utc", "duration_s", "gpus", "deadline_utc"}
	workloadOptional = []string{"regions", "interruptible", "power_w"}
)

// ReadWorkload reads a workload file: header id,submit_utc,duration_s,gpus,
// deadline_utc and optional regions (;-separated), interruptible
// (true|false) and power_w (per GPU, default 300), in any order. Region
// names are checked later, against the carbon files.
func ReadWorkload(r io.Reader, name string) ([]Job, error) {
	f, err := openCSV(r, name)
	if err != nil {
		return nil, err
	}
	col, err := f.columns(workloadRequired, workloadOptional)
	if err != nil {
		return nil, err
	}
	f.r.FieldsPerRecord = len(f.header)
	var jobs []Job
	seen := map[string]int{}
	for {
		if err := f.next(); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			return nil, err
		}
		j, err := parseJob(f, col)
		if err != nil {
			return nil, err
		}
		if prev, dup := seen[j.ID]; dup {
			return nil, f.errAt(col["id"], "id %q was already used on line %d", j.ID, prev)
		}
		seen[j.ID] = j.Line
		jobs = append(jobs, j)
	}
	return jobs, nil
}

func parseJob(f *csvFile, col map[string]int) (Job, error) {
	j := Job{Line: f.line(), PowerW: DefaultPowerW}
	get := func(c string) (string, int, bool) {
		i, ok := col[c]
		if !ok {
			return "", -1, false
		}
		return strings.TrimSpace(f.rec[i]), i, true
	}
	var i int
	var s string
	s, i, _ = get("id")
	if s == "" {
		return j, f.errAt(i, "is empty")
	}
	if strings.ContainsAny(s, ",\"\n\r") {
		return j, f.errAt(i, "contains a comma, quote or newline")
	}
	j.ID = s
	var err error
	s, i, _ = get("submit_utc")
	if j.Submit, err = parseTime(s); err != nil {
		return j, f.errAt(i, "%v", err)
	}
	s, i, _ = get("duration_s")
	d, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(d) || d <= 0 || d > 10*365*24*3600 {
		return j, f.errAt(i, "want seconds > 0 (up to 10 years), got %q", s)
	}
	j.Duration = time.Duration(math.Round(d * 1e9))
	s, i, _ = get("gpus")
	g, err := strconv.Atoi(s)
	if err != nil || g < 1 || g > 1<<20 {
		return j, f.errAt(i, "want a whole number ≥ 1, got %q", s)
	}
	j.GPUs = g
	s, i, _ = get("deadline_utc")
	if j.Deadline, err = parseTime(s); err != nil {
		return j, f.errAt(i, "%v", err)
	}
	if j.Deadline.Before(j.Submit) {
		return j, f.errAt(i, "deadline %s is before submit_utc", s)
	}
	if s, i, ok := get("regions"); ok && s != "" {
		for _, r := range strings.Split(s, ";") {
			r = strings.TrimSpace(r)
			if r == "" {
				return j, f.errAt(i, "empty region name in %q (want names separated by ;)", s)
			}
			if !slices.Contains(j.Regions, r) {
				j.Regions = append(j.Regions, r)
			}
		}
	}
	if s, i, ok := get("interruptible"); ok && s != "" {
		switch strings.ToLower(s) {
		case "true":
			j.Interruptible = true
		case "false":
		default:
			return j, f.errAt(i, "want true or false, got %q", s)
		}
	}
	if s, i, ok := get("power_w"); ok && s != "" {
		p, err := strconv.ParseFloat(s, 64)
		if err != nil || math.IsNaN(p) || math.IsInf(p, 0) || p <= 0 {
			return j, f.errAt(i, "want watts per GPU > 0, got %q", s)
		}
		j.PowerW = p
	}
	return j, nil
}

// ReadWorkloadFile reads the workload file at path.
func ReadWorkloadFile(path string) ([]Job, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open workload: %w", err)
	}
	defer fh.Close()
	return ReadWorkload(fh, path)
}

// ReadForecasts reads one region's forecast vintages: header issued_utc,
// target_utc,gco2_per_kwh, one row per vintage × target, in any order. Each
// vintage becomes a Series with IssuedAt set and points of kind forecast
// (each target holds until the next; the last for the step before it).
// The vintages are returned sorted by issue time.
func ReadForecasts(r io.Reader, name, region string) ([]forecast.Series, error) {
	f, err := openCSV(r, name)
	if err != nil {
		return nil, err
	}
	if len(f.header) != 3 || f.header[0] != "issued_utc" || f.header[1] != "target_utc" || f.header[2] != "gco2_per_kwh" {
		return nil, &ParseError{File: name, Line: 1, Column: 1, Err: greenq.Invalid("header", "got %q, want issued_utc,target_utc,gco2_per_kwh", strings.Join(f.header, ","))}
	}
	f.r.FieldsPerRecord = 3
	type row struct {
		issued, target time.Time
		v              float64
		line           int
	}
	var rows []row
	for {
		if err := f.next(); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			return nil, err
		}
		iss, err := parseTime(f.rec[0])
		if err != nil {
			return nil, f.errAt(0, "%v", err)
		}
		tgt, err := parseTime(f.rec[1])
		if err != nil {
			return nil, f.errAt(1, "%v", err)
		}
		v, err := parseIntensity(f.rec[2])
		if err != nil {
			return nil, f.errAt(2, "%v", err)
		}
		rows = append(rows, row{iss, tgt, v, f.line()})
	}
	sort.SliceStable(rows, func(a, b int) bool {
		if !rows[a].issued.Equal(rows[b].issued) {
			return rows[a].issued.Before(rows[b].issued)
		}
		return rows[a].target.Before(rows[b].target)
	})
	var out []forecast.Series
	for i := 0; i < len(rows); {
		k := i
		var times []time.Time
		var vals []float64
		for ; k < len(rows) && rows[k].issued.Equal(rows[i].issued); k++ {
			if k > i && rows[k].target.Equal(rows[k-1].target) {
				return nil, &ParseError{File: name, Line: rows[k].line, Column: 1, Err: greenq.Invalid("target_utc", "target %s appears twice in the vintage issued %s", rows[k].target.Format(time.RFC3339), rows[k].issued.Format(time.RFC3339))}
			}
			times = append(times, rows[k].target)
			vals = append(vals, rows[k].v)
		}
		out = append(out, forecast.Series{Region: region, Zone: region, Source: "file", Signal: forecast.SignalAverage, IssuedAt: rows[i].issued, Points: pointsFromSteps(times, vals, forecast.KindForecast)})
		i = k
	}
	return out, nil
}

// ReadForecastsDir reads every <region>.csv of forecast vintages in dir.
func ReadForecastsDir(dir string) (map[string][]forecast.Series, error) {
	out := map[string][]forecast.Series{}
	err := eachCSV(dir, func(path, region string) error {
		fh, err := os.Open(path)
		if err != nil {
			return fmt.Errorf("open forecast file: %w", err)
		}
		defer fh.Close()
		v, err := ReadForecasts(fh, path, region)
		if err != nil {
			return err
		}
		out[region] = v
		return nil
	})
	return out, err
}

// ParseCapacity parses --capacity "R=N,…" (GPUs per region, N ≥ 1).
func ParseCapacity(s string) (map[string]int, error) {
	out := map[string]int{}
	err := parsePairs(s, "capacity", func(r, v string) error {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return greenq.Invalid("capacity", "region %s: want a whole number of GPUs ≥ 1, got %q (form R=N,…)", r, v)
		}
		out[r] = n
		return nil
	})
	return out, err
}

// ParsePUE parses --pue "R=x,…" (x ≥ 1).
func ParsePUE(s string) (map[string]float64, error) {
	out := map[string]float64{}
	err := parsePairs(s, "pue", func(r, v string) error {
		x, err := strconv.ParseFloat(v, 64)
		if err != nil || math.IsNaN(x) || math.IsInf(x, 0) || x < 1 {
			return greenq.Invalid("pue", "region %s: want a number ≥ 1, got %q (form R=x,…)", r, v)
		}
		out[r] = x
		return nil
	})
	return out, err
}

func parsePairs(s, field string, fn func(r, v string) error) error {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil
	}
	seen := map[string]bool{}
	for _, kv := range strings.Split(s, ",") {
		r, v, ok := strings.Cut(strings.TrimSpace(kv), "=")
		r = strings.TrimSpace(r)
		if !ok || r == "" {
			return greenq.Invalid(field, "%q is not of the form R=value", kv)
		}
		if seen[r] {
			return greenq.Invalid(field, "region %s is given twice", r)
		}
		seen[r] = true
		if err := fn(r, strings.TrimSpace(v)); err != nil {
			return err
		}
	}
	return nil
}
