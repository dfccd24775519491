package file

import (
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/greenq/greenq"
	"github.com/greenq/greenq/forecast"
)

// Name is the provider's name in config and in a series' Source.
const Name = "file"

const week = 7 * 24 * time.Hour

// Config configures the adapter.
type Config struct {
	// Dir holds the <zone>.csv files (required).
	Dir string
	// Signal is what the files hold. Default average.
	Signal forecast.Signal
	// Replay shifts each file by the whole number of weeks that makes it
	// reach the end of the interval asked for, so old history serves as a
	// live signal. Points ending at or before now are kind actual, later
	// ones kind forecast, and Source is "file:replay(<year>)". Default false:
	// the file's own dates, every point kind actual.
	Replay bool
	// Now is the clock. Default time.Now.
	Now func() time.Time
}

// Provider reads series from CSV files, caching each file until it changes.
type Provider struct {
	cfg Config

	mu    sync.Mutex
	cache map[string]cached
}

type cached struct {
	mod  time.Time
	size int64
	pts  []forecast.Point
}

var _ forecast.Provider = (*Provider)(nil)

// New returns a Provider reading cfg.Dir.
func New(cfg Config) (*Provider, error) {
	if cfg.Dir == "" {
		return nil, greenq.Invalid("providers.file.dir", "is required")
	}
	if cfg.Signal == "" {
		cfg.Signal = forecast.SignalAverage
	}
	if cfg.Signal != forecast.SignalAverage && cfg.Signal != forecast.SignalMarginal {
		return nil, greenq.Invalid("providers.file.signal", "%q is neither average nor marginal", cfg.Signal)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Provider{cfg: cfg, cache: map[string]cached{}}, nil
}

// Fetch returns the points of <Dir>/<zone>.csv overlapping [from, to).
func (p *Provider) Fetch(ctx context.Context, zone string, from, to time.Time) (forecast.Series, error) {
	if err := ctx.Err(); err != nil {
		return forecast.Series{}, fmt.Errorf("read %s: %w", zone, err)
	}
	if zone == "" || strings.ContainsAny(zone, `/\`) || strings.HasPrefix(zone, ".") {
		return forecast.Series{}, greenq.Invalid("zone", "file zone %q is not a plain file name", zone)
	}
	pts, err := p.load(filepath.Join(p.cfg.Dir, zone+".csv"))
	if err != nil {
		return forecast.Series{}, fmt.Errorf("read %s: %w", zone, err)
	}
	now := p.cfg.Now()
	s := forecast.Series{Zone: zone, Source: Name, Signal: p.cfg.Signal, IssuedAt: now.UTC(), Points: pts}
	if p.cfg.Replay {
		s = replay(s, from, to, now)
	}
	s = s.Slice(from, to)
	if len(s.Points) == 0 {
		return forecast.Series{}, fmt.Errorf("read %s: nothing in [%s, %s): %w", zone, from.UTC().Format(time.RFC3339), to.UTC().Format(time.RFC3339), forecast.ErrNoData)
	}
	return s, nil
}

// replay shifts s by whole weeks (keeping weekday and time of day) to cover
// as much of [from, to) as it can, preferring the most recent history, and
// labels points by whether they end by now.
func replay(s forecast.Series, from, to, now time.Time) forecast.Series {
	if len(s.Points) == 0 {
		return s
	}
	a, b := s.Points[0].Start, s.End()
	// kMin is the smallest shift reaching to; larger shifts replay older
	// history, up to the one that still reaches from.
	kMin := int64(math.Ceil(float64(to.Sub(b)) / float64(week)))
	kMax := int64(math.Floor(float64(from.Sub(a)) / float64(week)))
	best, bestCover := kMin, time.Duration(-1)
	for k := kMin - 1; k <= kMax+1 && k <= kMin+1000; k++ {
		d := time.Duration(k) * week
		cover := minTime(b.Add(d), to).Sub(maxTime(a.Add(d), from))
		if cover > bestCover {
			best, bestCover = k, cover
		}
	}
	shift := time.Duration(best) * week
	out := s
	out.Source = fmt.Sprintf("file:replay(%d)", from.Add(-shift).UTC().Year())
	out.Points = make([]forecast.Point, len(s.Points))
	for i, pt := range s.Points {
		pt.Start, pt.End = pt.Start.Add(shift), pt.End.Add(shift)
		pt.Kind = forecast.KindForecast
		if !pt.End.After(now) {
			pt.Kind = forecast.KindActual
		}
		out.Points[i] = pt
	}
	return out
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func (p *Provider) load(path string) ([]forecast.Point, error) {
	st, err := os.Stat(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("%s: %w", path, forecast.ErrNoData)
		}
		return nil, err
	}
	p.mu.Lock()
	c, ok := p.cache[path]
	p.mu.Unlock()
	if ok && c.mod.Equal(st.ModTime()) && c.size == st.Size() {
		return c.pts, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	samples, err := ParseCSV(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(samples) == 0 {
		return nil, fmt.Errorf("%s has no rows: %w", path, forecast.ErrNoData)
	}
	pts, err := forecast.BuildPoints(samples, time.Hour)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	p.mu.Lock()
	p.cache[path] = cached{mod: st.ModTime(), size: st.Size(), pts: pts}
	p.mu.Unlock()
	return pts, nil
}

// ParseCSV reads rows of time_utc,gco2_per_kwh (RFC 3339 times, header
// required) as actual samples. Errors wrap forecast.ErrBadPayload.
func ParseCSV(r io.Reader) ([]forecast.Sample, error) {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = 2
	cr.ReuseRecord = true
	head, err := cr.Read()
	if err != nil {
		return nil, fmt.Errorf("read header: %v: %w", err, forecast.ErrBadPayload)
	}
	if strings.TrimPrefix(strings.TrimSpace(head[0]), "\ufeff") != "time_utc" || strings.TrimSpace(head[1]) != "gco2_per_kwh" {
		return nil, fmt.Errorf("header %q is not time_utc,gco2_per_kwh: %w", strings.Join(head, ","), forecast.ErrBadPayload)
	}
	var out []forecast.Sample
	for line := 2; ; line++ {
		rec, err := cr.Read()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("line %d: %v: %w", line, err, forecast.ErrBadPayload)
		}
		t, err := time.Parse(time.RFC3339, strings.TrimSpace(rec[0]))
		if err != nil || t.Year() < 1970 {
			// Before 1970 is no carbon data, and the zero time means "none".
			return nil, fmt.Errorf("line %d: time %q: %w", line, rec[0], forecast.ErrBadPayload)
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(rec[1]), 64)
		if err != nil || math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
			return nil, fmt.Errorf("line %d: intensity %q: %w", line, rec[1], forecast.ErrBadPayload)
		}
		out = append(out, forecast.Sample{Start: t.UTC(), Value: v, Kind: forecast.KindActual})
	}
}
