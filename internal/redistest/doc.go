// Package redistest connects integration tests to the throw-away
// redis-server that `make test` starts (GREENQ_TEST_REDIS_URL). Tests never
// flush the database: each takes a unique key prefix and unique region
// names, so packages and parallel tests share one server safely.
package redistest
