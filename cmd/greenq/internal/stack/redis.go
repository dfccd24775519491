package stack

import (
	"crypto/tls"
	"fmt"
	"strings"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/greenq/greenq"
	"github.com/greenq/greenq/cmd/greenq/internal/config"
)

// Connect returns greenq's Redis client and asynq's connection options for
// the topology cfg names: a Redis Cluster, a Sentinel-managed master, or a
// single server (redis:// or rediss://).
func Connect(cfg config.Config) (redis.UniversalClient, asynq.RedisConnOpt, error) {
	switch {
	case len(cfg.RedisCluster) > 0:
		opt := &redis.ClusterOptions{Addrs: cfg.RedisCluster}
		return redis.NewClusterClient(opt), asynq.RedisClusterClientOpt{Addrs: cfg.RedisCluster}, nil
	case cfg.RedisSentinel != nil:
		s := cfg.RedisSentinel
		opt := &redis.FailoverOptions{MasterName: s.Master, SentinelAddrs: s.Addrs, Password: s.Password}
		return redis.NewFailoverClient(opt), asynq.RedisFailoverClientOpt{MasterName: s.Master, SentinelAddrs: s.Addrs, Password: s.Password}, nil
	}
	opt, err := redis.ParseURL(cfg.Redis)
	if err != nil {
		return nil, nil, greenq.Invalid("redis", "%q is not a redis:// or rediss:// URL: %v", cfg.Redis, err)
	}
	aopt := asynq.RedisClientOpt{Addr: opt.Addr, Username: opt.Username, Password: opt.Password, DB: opt.DB}
	if strings.HasPrefix(cfg.Redis, "rediss://") {
		aopt.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12, ServerName: hostOf(opt.Addr)}
	}
	return redis.NewClient(opt), aopt, nil
}

func hostOf(addr string) string {
	if i := strings.LastIndex(addr, ":"); i >= 0 {
		return addr[:i]
	}
	return addr
}

var _ = fmt.Sprint
