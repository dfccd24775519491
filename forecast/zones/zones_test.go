package zones_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/greenq/greenq"
	"github.com/greenq/greenq/forecast/zones"
)

func TestLookupBuiltin(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		region string
		want   zones.Zone
	}{
		{"us-west-1", zones.Zone{ElectricityMaps: "US-CAL-CISO", WattTime: "CAISO_NORTH"}},
		{"europe-west2", zones.Zone{ElectricityMaps: "GB", WattTime: "UK"}},
		{"NorthEurope", zones.Zone{ElectricityMaps: "IE", WattTime: "IE"}},
		{"northamerica-northeast2", zones.Zone{ElectricityMaps: "CA-ON"}},
	} {
		z, ok := zones.Lookup(tc.region)
		require.True(t, ok, tc.region)
		require.Equal(t, tc.want, z, tc.region)
	}
	_, ok := zones.Lookup("mars-north-1")
	require.False(t, ok)
	require.Contains(t, zones.Regions(), "eastus")
}

func TestTableOverridesAndErrors(t *testing.T) {
	t.Parallel()
	tab := zones.NewTable(map[string]zones.Zone{
		"us-east-2":   {WattTime: "PJM_ROANOKE"},
		"on-prem-lab": {ElectricityMaps: "SE-SE3"},
	})
	z, err := tab.Lookup("us-east-2")
	require.NoError(t, err)
	require.Equal(t, zones.Zone{ElectricityMaps: "US-MIDA-PJM", WattTime: "PJM_ROANOKE"}, z)
	name, err := tab.ZoneFor("on-prem-lab", "electricitymaps")
	require.NoError(t, err)
	require.Equal(t, "SE-SE3", name)

	_, err = tab.Lookup("mars-north-1")
	require.ErrorContains(t, err, `"mars-north-1"`)
	require.Equal(t, greenq.CodeInvalidArgument, greenq.ErrorCodeOf(err))
	_, err = tab.ZoneFor("ap-south-1", "watttime")
	require.ErrorContains(t, err, `"ap-south-1"`)
}
