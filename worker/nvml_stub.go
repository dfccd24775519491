//go:build !(cgo && linux)

package worker

import "errors"

// openNVML is unavailable: NVML needs cgo on Linux.
func openNVML(MeterOptions) (EnergyMeter, error) {
	return nil, errors.New("open nvml: this binary was built without cgo; GPU energy is estimated")
}
