package queue

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/greenq/greenq"
)

func TestJobTokenPostsItsJobsReadingOnce(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	a := b.force(t, b.submit(t, "t").ID, greenq.StateRunning)
	other := b.force(t, b.submit(t, "t").ID, greenq.StateRunning)
	tokA, err := b.s.MintJobToken(ctx, a.ID, time.Hour)
	require.NoError(t, err)
	require.True(t, IsJobToken(tokA))
	tokB, err := b.s.MintJobToken(ctx, other.ID, time.Hour)
	require.NoError(t, err)
	require.NotEqual(t, tokA, tokB)
	r := greenq.EnergyReading{GPUKWh: 0.25, CPUKWh: 0.01, Source: greenq.EnergyNVML, CPUSource: greenq.EnergyRAPL, Meter: "greenq-meter"}

	requireCode(t, b.s.PostEnergy(ctx, other.ID, tokA, r), greenq.CodeForbidden)
	requireCode(t, b.s.PostEnergy(ctx, a.ID, JobTokenPrefix+"0000", r), greenq.CodeUnauthenticated)
	requireCode(t, b.s.PostEnergy(ctx, a.ID, "not-a-job-token", r), greenq.CodeUnauthenticated)
	bad := r
	bad.GPUKWh = -1
	err = b.s.PostEnergy(ctx, a.ID, tokA, bad)
	requireCode(t, err, greenq.CodeInvalidArgument)
	var ge *greenq.Error
	require.ErrorAs(t, err, &ge)
	require.Equal(t, "gpu_energy_kwh", ge.Field)

	require.NoError(t, b.s.PostEnergy(ctx, a.ID, tokA, r))
	requireCode(t, b.s.PostEnergy(ctx, a.ID, tokA, r), greenq.CodeConflict)

	got, err := b.s.TakeEnergy(ctx, a.ID)
	require.NoError(t, err)
	require.Equal(t, &r, got)
	// Taken: the token is revoked, and nothing is left to take.
	requireCode(t, b.s.PostEnergy(ctx, a.ID, tokA, r), greenq.CodeUnauthenticated)
	got, err = b.s.TakeEnergy(ctx, a.ID)
	require.NoError(t, err)
	require.Nil(t, got)
	// B's token was untouched by A's.
	require.NoError(t, b.s.PostEnergy(ctx, other.ID, tokB, r))
}

func TestJobTokenOnlyWhileRunningAndForTheLatestRun(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	j := b.force(t, b.submit(t, "t").ID, greenq.StateRunning)
	r := greenq.EnergyReading{GPUKWh: 1, Source: greenq.EnergyEstimate}
	first, err := b.s.MintJobToken(ctx, j.ID, time.Hour)
	require.NoError(t, err)
	second, err := b.s.MintJobToken(ctx, j.ID, time.Hour)
	require.NoError(t, err)
	requireCode(t, b.s.PostEnergy(ctx, j.ID, first, r), greenq.CodeUnauthenticated)

	b.force(t, j.ID, greenq.StateSucceeded)
	err = b.s.PostEnergy(ctx, j.ID, second, r)
	requireCode(t, err, greenq.CodeConflict)
	require.Contains(t, err.Error(), "succeeded")

	_, err = b.s.MintJobToken(ctx, j.ID, 0)
	require.Error(t, err)
}

// A cluster worker (Slurm, Kubernetes) offers many GPUs in all but at
// most its largest node's to one job: submit refuses a larger job, and
// the region's MaxGPUsPerWorker is the node's.
func TestLargestNodeBoundsJobSize(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	region := b.regions[0]
	require.NoError(t, b.s.Heartbeat(ctx, WorkerInfo{ID: "slurm", Region: region, GPUs: 40, LargestNode: 4}, time.Minute))
	_, err := b.s.Submit(ctx, "t", greenq.SubmitRequest{Command: []string{"true"}, Deadline: "24h", GPUs: 5, Regions: []string{region}})
	requireCode(t, err, greenq.CodeInvalidArgument)
	var ge *greenq.Error
	require.ErrorAs(t, err, &ge)
	require.Equal(t, "gpus", ge.Field)
	b.submit(t, "t", func(r *greenq.SubmitRequest) { r.GPUs, r.Regions = 4, []string{region} })
	regions, err := b.s.Regions(ctx)
	require.NoError(t, err)
	for _, r := range regions {
		if r.Name == region {
			require.Equal(t, 4, r.MaxGPUsPerWorker)
			require.Equal(t, 40, r.Capacity, "capacity is still all the cluster offers")
		}
	}
	require.Equal(t, 2, WorkerInfo{GPUs: 2}.JobGPUs(), "a worker on one machine: its GPUs")
}
