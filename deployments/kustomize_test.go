package deployments

// The kustomizations are built with kustomize's own library (krusty), as
// `kubectl kustomize DIR` builds them, and the tests assert on its output:
// configMapGenerator's hashed names, strategic-merge patches, namespace,
// labels and images are kustomize's, not a copy of them.

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/api/types"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/kustomize/kyaml/kio"
	"sigs.k8s.io/yaml"
)

// object is one Kubernetes object as kustomize emits it.
type object map[string]any

func (o object) apiVersion() string { s, _ := o["apiVersion"].(string); return s }
func (o object) kind() string       { s, _ := o["kind"].(string); return s }
func (o object) meta() map[string]any {
	m, _ := o["metadata"].(map[string]any)
	return m
}
func (o object) name() string { s, _ := o.meta()["name"].(string); return s }
func (o object) id() string   { return o.apiVersion() + " " + o.kind() + "/" + o.name() }

// kustomizeBuild builds the kustomization in dir, like `kustomize build dir`.
func kustomizeBuild(dir string) ([]object, error) {
	return kustomizeBuildFS(filesys.MakeFsOnDisk(), dir)
}

// kustomizeBuildFS builds the kustomization in dir of fs.
func kustomizeBuildFS(fs filesys.FileSystem, dir string) ([]object, error) {
	rm, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(fs, dir)
	if err != nil {
		return nil, fmt.Errorf("kustomize build %s: %w", dir, err)
	}
	var objs []object
	for _, r := range rm.Resources() {
		m, err := r.Map()
		if err != nil {
			return nil, fmt.Errorf("kustomize build %s: %s: %w", dir, r.CurId(), err)
		}
		objs = append(objs, object(m))
	}
	return objs, nil
}

// readKustomization decodes dir/kustomization.yaml strictly into
// kustomize's own type, so a misspelt field fails.
func readKustomization(dir string) (types.Kustomization, error) {
	var k types.Kustomization
	data, err := os.ReadFile(filepath.Join(dir, "kustomization.yaml"))
	if err != nil {
		return k, fmt.Errorf("read kustomization: %w", err)
	}
	if err := yaml.UnmarshalStrict(data, &k); err != nil {
		return k, fmt.Errorf("decode %s/kustomization.yaml: %w", dir, err)
	}
	if k.APIVersion != "kustomize.config.k8s.io/v1beta1" || k.Kind != "Kustomization" {
		return k, fmt.Errorf("%s/kustomization.yaml: apiVersion/kind %q/%q", dir, k.APIVersion, k.Kind)
	}
	return k, nil
}

// kustomizationFiles are the files of dir's kustomization that name other
// files: its resources, patches and generator sources.
func kustomizationFiles(k types.Kustomization) []string {
	files := append([]string(nil), k.Resources...)
	for _, p := range k.Patches {
		if p.Path != "" {
			files = append(files, p.Path)
		}
	}
	for _, g := range k.ConfigMapGenerator {
		for _, f := range g.FileSources {
			_, path, ok := strings.Cut(f, "=") // [key=]path
			if !ok {
				path = f
			}
			files = append(files, path)
		}
	}
	return files
}

// readObjects reads every YAML document in path.
func readObjects(path string) ([]object, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read: %w", err)
	}
	nodes, err := kio.FromBytes(data)
	if err != nil {
		return nil, fmt.Errorf("decode %s: %w", path, err)
	}
	var out []object
	for _, n := range nodes {
		m, err := n.Map()
		if err != nil {
			return nil, fmt.Errorf("decode %s: %w", path, err)
		}
		out = append(out, object(m))
	}
	return out, nil
}

// podSpecOf returns spec.template.spec of a workload, or nil.
func podSpecOf(o object) map[string]any {
	spec, _ := o["spec"].(map[string]any)
	tmpl, _ := spec["template"].(map[string]any)
	ps, _ := tmpl["spec"].(map[string]any)
	return ps
}

// TestKustomizePatches pins the kustomize behaviour the overlays rely on:
// a patch that names no object fails the build (so a broken overlay
// cannot pass), `$patch: delete` removes an object, and containers and env
// merge by name.
func TestKustomizePatches(t *testing.T) {
	t.Parallel()
	const base = `apiVersion: apps/v1
kind: Deployment
metadata: {name: a}
spec:
  selector: {matchLabels: {app: a}}
  template:
    metadata: {labels: {app: a}}
    spec:
      containers:
        - name: c
          image: x
          env: [{name: A, value: "1"}]
`
	tests := []struct {
		name    string
		patch   string
		wantErr string
		check   func(t *testing.T, objs []object)
	}{
		{name: "unknown target", wantErr: "no matches",
			patch: "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: b}\nspec: {replicas: 2}\n"},
		{name: "wrong kind", wantErr: "no matches",
			patch: "apiVersion: apps/v1\nkind: StatefulSet\nmetadata: {name: a}\nspec: {replicas: 2}\n"},
		{name: "delete",
			patch: "$patch: delete\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: a}\n",
			check: func(t *testing.T, objs []object) { require.Empty(t, objs) }},
		{name: "merge env by name",
			patch: `apiVersion: apps/v1
kind: Deployment
metadata: {name: a}
spec:
  template:
    spec:
      containers:
        - name: c
          env: [{name: A, value: "2"}, {name: B, value: "3"}]
`,
			check: func(t *testing.T, objs []object) {
				require.Len(t, objs, 1)
				c := podSpecOf(objs[0])["containers"].([]any)[0].(map[string]any)
				require.Equal(t, "x", c["image"])
				require.Equal(t, []any{map[string]any{"name": "A", "value": "2"}, map[string]any{"name": "B", "value": "3"}}, c["env"])
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			fs := filesys.MakeFsInMemory()
			require.NoError(t, fs.WriteFile("/k/kustomization.yaml", []byte(
				"apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources: [base.yaml]\npatches: [{path: patch.yaml}]\n")))
			require.NoError(t, fs.WriteFile("/k/base.yaml", []byte(base)))
			require.NoError(t, fs.WriteFile("/k/patch.yaml", []byte(tt.patch)))
			objs, err := kustomizeBuildFS(fs, "/k")
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			tt.check(t, objs)
		})
	}
}
