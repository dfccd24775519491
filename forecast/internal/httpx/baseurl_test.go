package httpx

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/greenq/greenq"
)

func TestBaseURL(t *testing.T) {
	t.Parallel()
	u, err := BaseURL("ukci", "", "https://api.example.org/")
	require.NoError(t, err)
	require.Equal(t, "https://api.example.org", u.String(), "the default, without a trailing slash")
	u, err = BaseURL("ukci", "http://127.0.0.1:9000/mirror/", "https://api.example.org")
	require.NoError(t, err)
	require.Equal(t, "http://127.0.0.1:9000/mirror", u.String())
	for _, bad := range []string{"api.example.org", "/v3", "http://"} {
		_, err = BaseURL("watttime", bad, "")
		var ge *greenq.Error
		require.ErrorAs(t, err, &ge, bad)
		require.Equal(t, "providers.watttime.base_url", ge.Field)
	}
}
