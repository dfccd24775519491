package entsoe

import (
	"encoding/csv"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

var update = flag.Bool("update", false, "rewrite the XML payloads in testdata from the production CSV")

// The payloads in testdata are written from testdata/fr_production_*.csv,
// hourly actual generation per production type in France that Let's Wait
// Awhile downloaded from ENTSO-E (see testdata/README.md). The fixture's
// clock is fixtureNow: the A75 document holds the actuals up to its hour,
// the A69 and A65 documents the Brussels days of 2019-12-24 and 12-25.
var fixtureNow = time.Date(2019, 12, 24, 18, 10, 0, 0, time.UTC)

const (
	frEIC      = "10YFR-RTE------C"
	fixtureCSV = "testdata/fr_production_2019-12-20_2019-12-25.csv"
)

// csvTypes maps the CSV's columns to production types.
var csvTypes = []struct{ column, psr string }{
	{"Biomass", PSRBiomass}, {"Fossil Gas", PSRGas}, {"Fossil Hard coal", PSRHardCoal}, {"Fossil Oil", PSROil},
	{"Hydro Pumped Storage", PSRPumpedStorage}, {"Hydro Run-of-river and poundage", PSRRunOfRiver},
	{"Hydro Water Reservoir", PSRReservoir}, {"Nuclear", PSRNuclear}, {"Solar", PSRSolar}, {"Waste", PSRWaste},
	{"Wind Onshore", PSRWindOnshore},
}

// production is the CSV: MW per hour (timestamps read as UTC, as the data
// README of the shared data does) per production type.
type production struct {
	hours []time.Time
	mw    map[string][]float64
}

func readProduction(t *testing.T) production {
	t.Helper()
	fh, err := os.Open(fixtureCSV)
	require.NoError(t, err)
	defer fh.Close()
	rows, err := csv.NewReader(fh).ReadAll()
	require.NoError(t, err)
	col := map[string]int{}
	for i, h := range rows[0] {
		col[h] = i
	}
	p := production{mw: map[string][]float64{}}
	for _, r := range rows[1:] {
		at, err := time.Parse("2006-01-02 15:04:05", r[0])
		require.NoError(t, err)
		p.hours = append(p.hours, at.UTC())
		for _, ct := range csvTypes {
			v, err := strconv.ParseFloat(r[col[ct.column]], 64)
			require.NoError(t, err)
			p.mw[ct.psr] = append(p.mw[ct.psr], v)
		}
	}
	return p
}

// brusselsDays splits [from, to) at midnight Brussels time (23:00Z in
// December), as the platform splits its periods.
func brusselsDays(from, to time.Time) [][2]time.Time {
	var out [][2]time.Time
	for a := from; a.Before(to); {
		b := time.Date(a.Year(), a.Month(), a.Day(), 23, 0, 0, 0, time.UTC)
		if !b.After(a) {
			b = b.Add(24 * time.Hour)
		}
		b = minT(b, to)
		out = append(out, [2]time.Time{a, b})
		a = b
	}
	return out
}

func minT(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

const tfmt = "2006-01-02T15:04Z"

type xmlSeries struct {
	business, psr string
	out           bool // outBiddingZone_Domain (load, consumption)
	value         func(i int) float64
}

// document writes a GL_MarketDocument as the platform does.
func (p production) document(docType, process string, from, to time.Time, ss []xmlSeries) string {
	var b strings.Builder
	fmt.Fprintf(&b, `<?xml version="1.0" encoding="UTF-8"?>
<GL_MarketDocument xmlns="urn:iec62325.351:tc57wg16:451-6:generationloaddocument:3:0">
	<mRID>greenq-fixture-%s</mRID>
	<revisionNumber>1</revisionNumber>
	<type>%s</type>
	<process.processType>%s</process.processType>
	<sender_MarketParticipant.mRID codingScheme="A01">10X1001A1001A450</sender_MarketParticipant.mRID>
	<sender_MarketParticipant.marketRole.type>A32</sender_MarketParticipant.marketRole.type>
	<receiver_MarketParticipant.mRID codingScheme="A01">10X1001A1001A450</receiver_MarketParticipant.mRID>
	<receiver_MarketParticipant.marketRole.type>A33</receiver_MarketParticipant.marketRole.type>
	<createdDateTime>%s</createdDateTime>
	<time_Period.timeInterval>
		<start>%s</start>
		<end>%s</end>
	</time_Period.timeInterval>
`, strings.ToLower(docType), docType, process, fixtureNow.Format("2006-01-02T15:04:05Z"), from.Format(tfmt), to.Format(tfmt))
	for k, s := range ss {
		domain := "inBiddingZone_Domain.mRID"
		if s.out {
			domain = "outBiddingZone_Domain.mRID"
		}
		agg := "A08"
		if s.psr == "" {
			agg = "A01"
		}
		fmt.Fprintf(&b, "\t<TimeSeries>\n\t\t<mRID>%d</mRID>\n\t\t<businessType>%s</businessType>\n\t\t<objectAggregation>%s</objectAggregation>\n\t\t<%s codingScheme=\"A01\">%s</%s>\n\t\t<quantity_Measure_Unit.name>MAW</quantity_Measure_Unit.name>\n\t\t<curveType>A01</curveType>\n",
			k+1, s.business, agg, domain, frEIC, domain)
		if s.psr != "" {
			fmt.Fprintf(&b, "\t\t<MktPSRType>\n\t\t\t<psrType>%s</psrType>\n\t\t</MktPSRType>\n", s.psr)
		}
		for _, day := range brusselsDays(from, to) {
			fmt.Fprintf(&b, "\t\t<Period>\n\t\t\t<timeInterval>\n\t\t\t\t<start>%s</start>\n\t\t\t\t<end>%s</end>\n\t\t\t</timeInterval>\n\t\t\t<resolution>PT60M</resolution>\n", day[0].Format(tfmt), day[1].Format(tfmt))
			for pos, h := 1, day[0]; h.Before(day[1]); pos, h = pos+1, h.Add(time.Hour) {
				i := int(h.Sub(p.hours[0]) / time.Hour)
				fmt.Fprintf(&b, "\t\t\t<Point>\n\t\t\t\t<position>%d</position>\n\t\t\t\t<quantity>%s</quantity>\n\t\t\t</Point>\n", pos, strconv.FormatFloat(s.value(i), 'f', -1, 64))
			}
			b.WriteString("\t\t</Period>\n")
		}
		b.WriteString("\t</TimeSeries>\n")
	}
	b.WriteString("</GL_MarketDocument>\n")
	return b.String()
}

// fixtures builds the payloads from the production CSV:
//
//   - a75.xml: actual generation per type, 2019-12-20T00:00Z up to the hour
//     of fixtureNow, every CSV column but pumped storage as production
//     (businessType A01); pumped storage as production when positive and as
//     consumption (outBiddingZone_Domain, businessType A04) when negative;
//   - a69.xml: "day-ahead" solar (B16, businessType A94) and onshore wind
//     (B19, A93) for the Brussels days of 12-24 and 12-25: the actual
//     output of those hours, as no forecast vintage of them is available;
//   - a65.xml: "day-ahead" load for the same days: the sum of every
//     production column but pumped storage, a stand-in for the published
//     load forecast, which the source lacks (exchanges are thus ignored).
func fixtures(p production) map[string]string {
	hour := fixtureNow.Truncate(time.Hour)
	var gen []xmlSeries
	for _, ct := range csvTypes {
		psr := ct.psr
		if psr == PSRPumpedStorage {
			gen = append(gen,
				xmlSeries{business: "A01", psr: psr, value: func(i int) float64 { return max(0, p.mw[psr][i]) }},
				xmlSeries{business: "A04", psr: psr, out: true, value: func(i int) float64 { return max(0, -p.mw[psr][i]) }})
			continue
		}
		gen = append(gen, xmlSeries{business: "A01", psr: psr, value: func(i int) float64 { return p.mw[psr][i] }})
	}
	daFrom, daTo := time.Date(2019, 12, 23, 23, 0, 0, 0, time.UTC), time.Date(2019, 12, 25, 23, 0, 0, 0, time.UTC)
	load := func(i int) float64 {
		var sum float64
		for _, ct := range csvTypes {
			if ct.psr != PSRPumpedStorage {
				sum += p.mw[ct.psr][i]
			}
		}
		return sum
	}
	return map[string]string{
		"a75.xml": p.document("A75", "A16", p.hours[0], hour, gen),
		"a69.xml": p.document("A69", "A01", daFrom, daTo, []xmlSeries{
			{business: "A94", psr: PSRSolar, value: func(i int) float64 { return p.mw[PSRSolar][i] }},
			{business: "A93", psr: PSRWindOnshore, value: func(i int) float64 { return p.mw[PSRWindOnshore][i] }},
		}),
		"a65.xml": p.document("A65", "A01", daFrom, daTo, []xmlSeries{{business: "A04", out: true, value: load}}),
	}
}

// TestFixturesFromSource: the committed payloads are what fixtures makes of
// the committed CSV (go test -run TestFixturesFromSource -update rewrites
// them).
func TestFixturesFromSource(t *testing.T) {
	t.Parallel()
	for name, body := range fixtures(readProduction(t)) {
		path := "testdata/" + name
		if *update {
			require.NoError(t, os.WriteFile(path, []byte(body), 0o644))
		}
		got, err := os.ReadFile(path)
		require.NoError(t, err)
		require.Equal(t, body, string(got), "%s differs from what the CSV gives; run with -update", name)
	}
}
