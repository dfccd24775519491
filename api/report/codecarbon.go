package report

import (
	"encoding/csv"
	"io"
	"strconv"
)

// CodeCarbonHeader is CodeCarbon's emissions.csv header (the fields of its
// EmissionsData, in order, as codecarbon's CSV output writes them), so that
// dashboards and scripts built for CodeCarbon read greenq's jobs. The
// codecarbon format writes one row per finished job with a receipt:
//
//	timestamp: the run's end, UTC, as CodeCarbon writes it (no zone)
//	project_name: the job's name ("greenq" when it has none)
//	run_id: the job's id; experiment_id: its sweep group
//	duration: seconds run
//	emissions: operational emissions in kgCO2e (facility energy × the grid
//	  intensity of the hours and places run, as the receipt says);
//	  emissions_rate: kgCO2e per second
//	cpu_power, gpu_power, ram_power: mean watts over the run
//	cpu_energy, gpu_energy, ram_energy, energy_consumed: kWh of IT energy
//	  (energy_consumed is their sum; PUE is in pue and in emissions)
//	region, cloud_region: the greenq region the job ran in
//	gpu_count, gpu_model: the job's GPUs and the model NVML reported
//	tracking_mode: "process" (greenq meters the job's own GPUs and process)
//	pue: the receipt's PUE
//
// What greenq does not know (country, cloud provider, OS, Python and
// CodeCarbon versions, CPU model and count, RAM size, position, water)
// is left empty, or 0 where CodeCarbon's own default is 0.
var CodeCarbonHeader = []string{
	"timestamp", "project_name", "run_id", "experiment_id", "duration", "emissions", "emissions_rate",
	"cpu_utilization_percent", "ram_utilization_percent", "ram_used_gb",
	"cpu_power", "gpu_power", "ram_power", "cpu_energy", "gpu_energy", "ram_energy", "energy_consumed",
	"water_consumed", "country_name", "country_iso_code", "region", "cloud_provider", "cloud_region",
	"os", "python_version", "codecarbon_version", "cpu_count", "cpu_model", "gpu_count", "gpu_model",
	"longitude", "latitude", "ram_total_size", "tracking_mode", "on_cloud", "pue", "wue",
}

func renderCodeCarbon(w io.Writer, r Report) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(CodeCarbonHeader); err != nil {
		return err
	}
	for _, l := range r.Jobs {
		if !l.Receipt {
			continue
		}
		dur := l.End.Sub(l.Start).Seconds()
		if l.End.IsZero() || l.Start.IsZero() || dur < 0 {
			dur = 0
		}
		if l.GPUs > 0 && l.GPUHours > 0 {
			dur = l.GPUHours * 3600 / float64(l.GPUs) // time actually run, pauses left out
		}
		watts := func(kwh float64) string {
			if dur <= 0 {
				return "0"
			}
			return num(kwh * 3.6e6 / dur)
		}
		kg := l.GCO2 / 1000
		rate := 0.0
		if dur > 0 {
			rate = kg / dur
		}
		project := l.Name
		if project == "" {
			project = "greenq"
		}
		ts := ""
		if !l.End.IsZero() {
			ts = l.End.UTC().Format("2006-01-02T15:04:05")
		}
		rec := []string{
			ts, project, l.ID, l.Group, num(dur), num(kg), num(rate),
			"0", "0", "0",
			watts(l.CPUEnergyKWh), watts(l.GPUEnergyKWh), watts(l.RAMEnergyKWh),
			num(l.CPUEnergyKWh), num(l.GPUEnergyKWh), num(l.RAMEnergyKWh), num(l.EnergyKWh),
			"0", "", "", l.Region, "", l.Region,
			"", "", "", "", "", strconv.Itoa(l.GPUs), l.GPUModel,
			"", "", "", "process", "N", num(l.PUE), "0",
		}
		if err := cw.Write(rec); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}
