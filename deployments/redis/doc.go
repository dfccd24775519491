// Package redis holds the Redis deployment files (users.acl) and the test
// that checks their roles against a real redis-server. The test lives here,
// not in package deployments, so that its binary, which links the worker's
// NVML bindings, does not also link kustomize: kustomize pulls in Go's
// plugin package, whose eager symbol binding the NVML bindings cannot load
// under.
package redis
