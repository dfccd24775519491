package queue_test

import (
	"context"
	"log/slog"
	"os"

	"github.com/greenq/greenq"
	"github.com/greenq/greenq/queue"
	"github.com/redis/go-redis/v9"
)

// A server replica: the store serves every replica's API; the planner and
// the release loop run only on the leader, under its fencing token.
func ExampleLease_Run() {
	ctx := context.Background()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	rdb := redis.NewUniversalClient(&redis.UniversalOptions{Addrs: []string{"127.0.0.1:6379"}})
	store, err := queue.NewStore(rdb, queue.Config{Regions: []greenq.Region{{Name: "eu-north"}}, Logger: log})
	if err != nil {
		panic(err)
	}
	planner, _ := queue.NewPlanner(store, queue.PlannerConfig{Replan: "@every 5m", Logger: log})
	releaser, _ := queue.NewReleaser(store, queue.ReleaserConfig{Logger: log})
	lease, _ := queue.NewLease(rdb, queue.LeaseConfig{Logger: log})
	_ = lease.Run(ctx, func(leaderCtx context.Context) {
		go func() { _ = planner.Run(leaderCtx) }()
		_ = releaser.Run(leaderCtx)
	})
}

// Submitting a sweep: three trials sharing a group and deadline; the same
// key again returns the same jobs.
func ExampleStore_Submit() {
	ctx := context.Background()
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379"})
	store, _ := queue.NewStore(rdb, queue.Config{Regions: []greenq.Region{{Name: "eu-north"}}})
	jobs, err := store.Submit(ctx, "alice", greenq.SubmitRequest{
		Command: []string{"python", "train.py", "--lr", "3e-4"}, Deadline: "24h", Trials: 3, Key: "lr-sweep-1",
	})
	if err != nil {
		panic(err)
	}
	_ = jobs[0].Group
}
