package entsoe

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/greenq/greenq/forecast"
)

// The Transparency Platform answers a data request with a GL_MarketDocument
// (namespace urn:iec62325.351:tc57wg16:451-6:generationloaddocument:3:0):
// one TimeSeries per production type (MktPSRType/psrType) and direction
// (inBiddingZone_Domain for generation, outBiddingZone_Domain for load and
// for consumption such as pumping), each holding Periods with a
// timeInterval, a resolution (PT15M, PT30M, PT60M) and Points of 1-based
// position and quantity in MW (quantity_Measure_Unit.name MAW). curveType
// A01 lists every position; A03 omits a position whose quantity repeats the
// one before. A request without data is answered by an
// Acknowledgement_MarketDocument whose Reason has code 999 and a text such
// as "No matching data found for Data item …".

// maxPositions bounds one period: a year of quarter hours.
const maxPositions = 366 * 96

type glDocument struct {
	XMLName    xml.Name
	Type       string         `xml:"type"`
	TimeSeries []glTimeSeries `xml:"TimeSeries"`
	Reason     []ackReason    `xml:"Reason"`
}

type ackReason struct {
	Code string `xml:"code"`
	Text string `xml:"text"`
}

type glTimeSeries struct {
	BusinessType string `xml:"businessType"`
	InDomain     string `xml:"inBiddingZone_Domain.mRID"`
	OutDomain    string `xml:"outBiddingZone_Domain.mRID"`
	Unit         string `xml:"quantity_Measure_Unit.name"`
	CurveType    string `xml:"curveType"`
	PSRType      string `xml:"MktPSRType>psrType"`
	Periods      []struct {
		Start      string `xml:"timeInterval>start"`
		End        string `xml:"timeInterval>end"`
		Resolution string `xml:"resolution"`
		Points     []struct {
			Position string `xml:"position"`
			Quantity string `xml:"quantity"`
		} `xml:"Point"`
	} `xml:"Period"`
}

// block is a constant power over [start, end).
type block struct {
	start, end time.Time
	mw         float64
}

// curve is a power series: blocks sorted by start, not overlapping.
type curve []block

// series is one TimeSeries of a document, its periods flattened.
type series struct {
	psr         string // production type; "" for load
	consumption bool   // outBiddingZone_Domain: load, pumping, charging
	blocks      curve
}

// parseDocument reads one answer of the Transparency Platform. An
// acknowledgement saying there is no data is ErrNoData; anything that is
// not a GL_MarketDocument with well-formed series is ErrBadPayload.
func parseDocument(body []byte) ([]series, error) {
	dec := xml.NewDecoder(bytes.NewReader(body))
	dec.Strict = true
	var doc glDocument
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("empty answer: %w", forecast.ErrBadPayload)
		}
		return nil, fmt.Errorf("decode: %v: %w", err, forecast.ErrBadPayload)
	}
	switch doc.XMLName.Local {
	case "GL_MarketDocument":
	case "Acknowledgement_MarketDocument":
		var texts []string
		for _, r := range doc.Reason {
			if strings.Contains(strings.ToLower(r.Text), "no matching data") {
				return nil, fmt.Errorf("%s (code %s): %w", r.Text, r.Code, forecast.ErrNoData)
			}
			texts = append(texts, fmt.Sprintf("%s (code %s)", r.Text, r.Code))
		}
		return nil, fmt.Errorf("request refused: %s: %w", strings.Join(texts, "; "), forecast.ErrBadPayload)
	default:
		return nil, fmt.Errorf("answer is a %q, not a GL_MarketDocument: %w", doc.XMLName.Local, forecast.ErrBadPayload)
	}
	out := make([]series, 0, len(doc.TimeSeries))
	for i, ts := range doc.TimeSeries {
		s, err := ts.parse()
		if err != nil {
			return nil, fmt.Errorf("time series %d: %w", i+1, err)
		}
		out = append(out, s)
	}
	return out, nil
}

func (ts glTimeSeries) parse() (series, error) {
	s := series{psr: strings.TrimSpace(ts.PSRType), consumption: strings.TrimSpace(ts.OutDomain) != "" && strings.TrimSpace(ts.InDomain) == ""}
	if u := strings.TrimSpace(ts.Unit); u != "" && u != "MAW" {
		return s, fmt.Errorf("unit %q is not MAW (MW): %w", u, forecast.ErrBadPayload)
	}
	curveType := strings.TrimSpace(ts.CurveType)
	if curveType != "" && curveType != "A01" && curveType != "A03" {
		return s, fmt.Errorf("curve type %q: %w", curveType, forecast.ErrBadPayload)
	}
	for _, p := range ts.Periods {
		start, err := parseTime(p.Start)
		if err != nil {
			return s, err
		}
		end, err := parseTime(p.End)
		if err != nil {
			return s, err
		}
		res, err := parseResolution(p.Resolution)
		if err != nil {
			return s, err
		}
		if !end.After(start) || end.Sub(start) > 400*24*time.Hour {
			return s, fmt.Errorf("period %s → %s: %w", p.Start, p.End, forecast.ErrBadPayload)
		}
		n := int(end.Sub(start) / res)
		if n > maxPositions {
			return s, fmt.Errorf("period %s → %s at %s has %d positions (at most %d): %w", p.Start, p.End, p.Resolution, n, maxPositions, forecast.ErrBadPayload)
		}
		vals := make([]float64, n)
		set := make([]bool, n)
		for _, pt := range p.Points {
			pos, err := strconv.Atoi(strings.TrimSpace(pt.Position))
			if err != nil || pos < 1 || pos > n {
				return s, fmt.Errorf("point position %q outside 1…%d: %w", pt.Position, n, forecast.ErrBadPayload)
			}
			q, err := strconv.ParseFloat(strings.TrimSpace(pt.Quantity), 64)
			if err != nil || math.IsNaN(q) || math.IsInf(q, 0) {
				return s, fmt.Errorf("point %d: quantity %q: %w", pos, pt.Quantity, forecast.ErrBadPayload)
			}
			vals[pos-1], set[pos-1] = q, true
		}
		for i := range n {
			if !set[i] {
				if curveType != "A03" || i == 0 || !set[i-1] {
					continue // A01: a missing position is a gap
				}
				// A03: an omitted position repeats the one before.
				vals[i], set[i] = vals[i-1], true
			}
			a := start.Add(time.Duration(i) * res)
			s.blocks = append(s.blocks, block{start: a, end: a.Add(res), mw: vals[i]})
		}
	}
	sort.SliceStable(s.blocks, func(a, b int) bool { return s.blocks[a].start.Before(s.blocks[b].start) })
	return s, nil
}

// parseTime reads the platform's UTC instants: 2019-12-23T23:00Z, with or
// without seconds.
func parseTime(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	for _, layout := range []string{"2006-01-02T15:04Z07:00", time.RFC3339} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("time %q: %w", s, forecast.ErrBadPayload)
}

// parseResolution reads an ISO 8601 duration of minutes or hours
// (PT15M, PT30M, PT60M, PT1H).
func parseResolution(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	bad := fmt.Errorf("resolution %q: %w", s, forecast.ErrBadPayload)
	if !strings.HasPrefix(s, "PT") || len(s) < 4 {
		return 0, bad
	}
	n, err := strconv.Atoi(s[2 : len(s)-1])
	if err != nil || n <= 0 {
		return 0, bad
	}
	var d time.Duration
	switch s[len(s)-1] {
	case 'M':
		d = time.Duration(n) * time.Minute
	case 'H':
		d = time.Duration(n) * time.Hour
	default:
		return 0, bad
	}
	if d < time.Minute || d > 24*time.Hour {
		return 0, bad
	}
	return d, nil
}

// mean returns the time-weighted mean power over [a, b) and whether any
// block covers part of it.
func (c curve) mean(a, b time.Time) (float64, bool) {
	i := sort.Search(len(c), func(i int) bool { return c[i].end.After(a) })
	var sum, covered float64
	for ; i < len(c) && c[i].start.Before(b); i++ {
		lo, hi := c[i].start, c[i].end
		if lo.Before(a) {
			lo = a
		}
		if hi.After(b) {
			hi = b
		}
		if d := hi.Sub(lo).Seconds(); d > 0 {
			sum += c[i].mw * d
			covered += d
		}
	}
	if covered == 0 {
		return 0, false
	}
	return sum / covered, true
}

// span returns the first start and last end of the curve.
func (c curve) span() (time.Time, time.Time) {
	if len(c) == 0 {
		return time.Time{}, time.Time{}
	}
	end := c[0].end
	for _, b := range c {
		if b.end.After(end) {
			end = b.end
		}
	}
	return c[0].start, end
}
