// Package redistest connects integration tests to a throw-away
// redis-server: the one `make test` starts (GREENQ_TEST_REDIS_URL), or,
// when that is unset, one the test binary starts itself on a free loopback
// port, without persistence, the first time a test asks for it. Without
// either a test fails saying redis-server is missing; it never skips.
// Tests never flush the database: each takes a unique key prefix and unique
// region names, so packages and parallel tests share one server safely.
package redistest
