// Package kubernetes holds greenq's Kubernetes manifests (a kustomize base,
// one overlay per region cluster, the Kubernetes executor's objects and an
// optional single-node Redis); it has no Go API. Its test builds every
// kustomization with the real kustomize (sigs.k8s.io/kustomize/api/krusty)
// and decodes the result strictly; ../kubernetes_test.go checks the
// objects' contents. The test lives apart from ../ because kustomize links
// Go's plugin package, whose eager symbol binding the worker's NVML
// bindings (imported there) cannot load under without a GPU driver.
package kubernetes
