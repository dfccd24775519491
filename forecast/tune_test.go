package forecast_test

import (
	"fmt"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/greenq/greenq/forecast"
)

// BenchmarkTuneForecaster grid-searches MethodProfile's parameters on 2022
// origins (in-sample for tuning; the benchmark table scores 2023) and
// prints the ten best. make bench leaves it out; run it by hand:
// go test -run '^$' -bench BenchmarkTuneForecaster -benchtime 1x ./forecast/
func BenchmarkTuneForecaster(b *testing.B) {
	data := dataDir(b)
	ors := origins(time.Date(2022, 1, 8, 0, 0, 0, 0, time.UTC), time.Date(2022, 12, 28, 0, 0, 0, 0, time.UTC), 30*time.Hour)
	var series []forecast.Series
	var naive []float64
	for _, z := range benchZones {
		s := loadSeries(b, filepath.Join(data, "carbon", "em_"+z+".csv"), time.Hour)
		series = append(series, s)
		naive = append(naive, forecast.EvaluateMAE(s, forecast.Forecaster{Method: forecast.MethodSeasonalDay}.Forecast, ors, 72).Avg(72))
	}
	type res struct {
		p     forecast.Params
		score float64
	}
	var all []res
	for _, days := range []int{3, 7, 14} {
		for _, ww := range []float64{0, 0.25} {
			for _, decay := range []float64{0.85, 0.9, 0.95, 0.98} {
				for _, floor := range []float64{0, 0.2, 0.4} {
					for _, lh := range []int{1, 3} {
						p := forecast.Params{Days: days, WeekWeight: ww, LevelHours: lh, Decay: decay, Floor: floor}
						f := forecast.Forecaster{Params: &p}.Forecast
						var score float64
						for i, s := range series {
							score += forecast.EvaluateMAE(s, f, ors, 72).Avg(72) / naive[i]
						}
						all = append(all, res{p, score / float64(len(series))})
					}
				}
			}
		}
	}
	sort.Slice(all, func(i, j int) bool { return all[i].score < all[j].score })
	for _, r := range all[:10] {
		fmt.Printf("%+v  relMAE=%.3f\n", r.p, r.score)
	}
}

// BenchmarkTuneCompare prints MAE by lead of the forecaster's methods on
// 2022 origins. make bench leaves it out; run it by hand:
// go test -run '^$' -bench BenchmarkTuneCompare -benchtime 1x ./forecast/
func BenchmarkTuneCompare(b *testing.B) {
	data := dataDir(b)
	ors := origins(time.Date(2022, 1, 8, 0, 0, 0, 0, time.UTC), time.Date(2022, 12, 28, 0, 0, 0, 0, time.UTC), 29*time.Hour)
	fs := map[string]forecast.ForecastFunc{
		"naive":      forecast.Forecaster{Method: forecast.MethodSeasonalDay}.Forecast,
		"profile":    forecast.Forecaster{}.Forecast,
		"regression": forecast.Forecaster{Method: forecast.MethodRegression}.Forecast,
	}
	for _, z := range benchZones {
		s := loadSeries(b, filepath.Join(data, "carbon", "em_"+z+".csv"), time.Hour)
		for _, name := range []string{"naive", "profile", "regression"} {
			r := forecast.EvaluateMAE(s, fs[name], ors, 48)
			fmt.Printf("%-12s %-10s", z, name)
			for _, h := range []int{1, 2, 3, 6, 12, 24, 36, 48} {
				fmt.Printf(" %3d:%6.1f", h, r.At(h))
			}
			fmt.Printf(" avg48=%.1f\n", r.Avg(48))
		}
	}
}
