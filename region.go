package greenq

// Region is one regional GPU pool as configured (greenq.yaml `regions`) and
// shown by GET /v1/regions.
type Region struct {
	// Name is what workers pass to --region.
	Name string `json:"name" yaml:"name"`
	// Zone is the grid zone the forecast provider knows (e.g. "GB", "SE").
	Zone string `json:"zone" yaml:"zone"`
	// Provider names the forecast source: file, ukci, watttime,
	// electricitymaps or carbonaware. Default file.
	Provider string `json:"provider" yaml:"provider"`
	// PUE is the data centre's power usage effectiveness. Default 1.
	PUE float64 `json:"pue" yaml:"pue"`
	// GPUPriceUSDPerHour is the price of one GPU-hour.
	GPUPriceUSDPerHour float64 `json:"gpu_price_usd_per_hour" yaml:"gpu_price_usd_per_hour"`
	// PriceSchedule optionally overrides the price by hour of day (UTC).
	PriceSchedule []PriceStep `json:"price_schedule,omitempty" yaml:"price_schedule,omitempty"`
	// Capacity is the live GPU count from worker heartbeats (read-only).
	Capacity int `json:"capacity" yaml:"-"`
	// Workers is the number of live workers (read-only).
	Workers int `json:"workers" yaml:"-"`
}

// PriceStep is a time-of-use price for hours [FromHour, ToHour) UTC.
type PriceStep struct {
	FromHour      int     `json:"from_hour" yaml:"from_hour"`
	ToHour        int     `json:"to_hour" yaml:"to_hour"`
	USDPerGPUHour float64 `json:"usd_per_gpu_hour" yaml:"usd_per_gpu_hour"`
}
