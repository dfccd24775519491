package stack

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestDevBannerSaysWhereTheAPIIs(t *testing.T) {
	t.Parallel()
	require.NotContains(t, devBanner("127.0.0.1:8080"), "GREENQ_API_URL", "the default needs no setting")
	b := devBanner("127.0.0.1:9000")
	require.Contains(t, b, "export GREENQ_API_URL=http://127.0.0.1:9000")
	require.Less(t, strings.Index(b, "GREENQ_API_URL"), strings.Index(b, "bin/greenq submit"), "said before the commands that need it")
}
