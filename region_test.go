package greenq_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/greenq/greenq"
)

func TestCheckFitsWorkers(t *testing.T) {
	t.Parallel()
	known := []greenq.Region{{Name: "small", MaxGPUsPerWorker: 2}, {Name: "big", MaxGPUsPerWorker: 4}, {Name: "new"}}
	tests := []struct {
		name    string
		gpus    int
		allowed []string
		known   []greenq.Region
		ok      bool
	}{
		{"one GPU always fits", 1, []string{"small"}, known, true},
		{"fits the largest allowed", 4, []string{"small", "big"}, known, true},
		{"too large for the only allowed", 3, []string{"small"}, known, false},
		{"too large for every allowed", 5, []string{"small", "big"}, known, false},
		{"a region nothing is known about takes any size", 100, []string{"small", "new"}, known, true},
		{"every region when none named", 100, nil, known, true},
		{"every region, all known", 5, nil, known[:2], false},
		{"no regions configured", 100, nil, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := greenq.CheckFitsWorkers(tt.gpus, tt.allowed, tt.known)
			if tt.ok {
				require.NoError(t, err)
				return
			}
			var e *greenq.Error
			require.ErrorAs(t, err, &e)
			require.Equal(t, greenq.CodeInvalidArgument, e.Code)
			require.Equal(t, "gpus", e.Field)
			require.Contains(t, e.Message, "at most")
		})
	}
}
