package stack

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/greenq/greenq"
	"github.com/greenq/greenq/cmd/greenq/internal/config"
	"github.com/greenq/greenq/forecast/entsoe"
)

func TestProvidersENTSOE(t *testing.T) {
	t.Parallel()
	c := config.Config{Regions: []greenq.Region{{Name: "eu-central", Zone: "DE-LU", Provider: "entsoe", PUE: 1}}}
	_, err := Providers(c, time.Now)
	var ge *greenq.Error
	require.ErrorAs(t, err, &ge, "a region on entsoe needs the token")
	require.Equal(t, "providers.entsoe.token", ge.Field)
	c.Providers.ENTSOE.Token = "tok"
	ps, err := Providers(c, time.Now)
	require.NoError(t, err)
	require.IsType(t, &entsoe.Provider{}, ps["entsoe"])
}
