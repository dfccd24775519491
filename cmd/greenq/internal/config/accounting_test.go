package config

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// TestRegionEmbodiedFactor: a region's embodied factor, shared with the
// workers, defaults to the worker section's.
func TestRegionEmbodiedFactor(t *testing.T) {
	t.Parallel()
	c, err := load(t, `
regions:
  - {name: eu-north, zone: SE, embodied_gco2_per_gpu_hour: 30}
  - {name: uk-south, zone: GB}
worker: {embodied_gco2_per_gpu_hour: 12}
`)
	require.NoError(t, err)
	require.Equal(t, 30.0, c.Regions[0].EmbodiedGCO2PerGPUHour)
	require.Equal(t, 12.0, c.Regions[1].EmbodiedGCO2PerGPUHour)
}
