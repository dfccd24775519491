// Package deployments holds greenq's deployment files and the tests that
// keep them honest; it has no Go API.
//
//   - docker/: the multi-stage Dockerfile (targets server and worker) and
//     the healthcheck command used as the images' HEALTHCHECK.
//   - kubernetes/: a kustomize base, one overlay per region, the
//     Kubernetes executor's objects (kube-executor/, used by
//     overlays/k8s-executor-eu-north), and an optional single-node Redis;
//     its own test builds every kustomization with the real kustomize.
//   - systemd/: units for the server and for one worker per region.
//   - local/: run.sh, Redis + server + one worker per region as separate
//     processes on one machine.
//   - redis/: users.acl, the Redis roles (server, worker, admin) with
//     password placeholders; TestRedisACLRoles runs a real worker under the
//     worker role against a real redis-server.
//
// The tests parse every manifest strictly with the Kubernetes API types,
// build each overlay with a small kustomize resolver of their own (the
// subset of kustomize these files use), and check every greenq command line
// in the manifests, the Dockerfile, the units and the script against the
// flags of the real binary (`greenq CMD --help`). See README.md.
package deployments
