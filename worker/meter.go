package worker

import (
	"log/slog"
	"time"
)

// MeterOptions configures OpenGPUMeter.
type MeterOptions struct {
	// SampleInterval is how often power, utilisation and memory are
	// sampled. Default 1s.
	SampleInterval time.Duration
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// Logger receives the reason NVML is unavailable. Default: discard.
	Logger *slog.Logger
}

func (o MeterOptions) withDefaults() MeterOptions {
	if o.SampleInterval <= 0 {
		o.SampleInterval = time.Second
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}

// OpenGPUMeter returns an NVML meter when the binary has NVML (cgo on
// Linux) and the driver's library loads; otherwise an EstimateMeter and the
// reason NVML is not used (for a log line; not fatal).
func OpenGPUMeter(o MeterOptions) (EnergyMeter, error) {
	o = o.withDefaults()
	m, err := openNVML(o)
	if err != nil {
		return &EstimateMeter{Now: o.Now}, err
	}
	return m, nil
}
