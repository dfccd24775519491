package deployments

// A small kustomize resolver for the tests. The full kustomize API is a
// heavy dependency (and its newest release needs a newer Go), so this
// implements exactly the subset the kustomizations here use and rejects
// everything else (the kustomization struct is decoded strictly):
//
//   - resources: files (one or more YAML documents) and directories holding
//     a kustomization.yaml, built recursively;
//   - configMapGenerator with files (no name-hash suffix is added, so
//     references keep the plain name);
//   - patches with path: one strategic-merge patch per file, matched by
//     apiVersion, kind and name; a patch that matches nothing is an error,
//     as in kustomize. `$patch: delete` removes the object; maps merge; a
//     null deletes a key; the lists containers, initContainers, env and
//     volumes merge by name and volumeMounts by mountPath; other lists are
//     replaced;
//   - namespace (not on cluster-scoped kinds), labels (without
//     includeSelectors) and images.

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"sigs.k8s.io/yaml"
)

// object is one Kubernetes object as decoded from YAML.
type object map[string]any

func (o object) apiVersion() string { s, _ := o["apiVersion"].(string); return s }
func (o object) kind() string       { s, _ := o["kind"].(string); return s }
func (o object) meta() map[string]any {
	m, _ := o["metadata"].(map[string]any)
	return m
}
func (o object) name() string { s, _ := o.meta()["name"].(string); return s }
func (o object) id() string   { return o.apiVersion() + " " + o.kind() + "/" + o.name() }

// kustomization is the part of kustomize's Kustomization that the files
// here use.
type kustomization struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Namespace  string `json:"namespace,omitempty"`
	Labels     []struct {
		Pairs            map[string]string `json:"pairs"`
		IncludeSelectors bool              `json:"includeSelectors,omitempty"`
	} `json:"labels,omitempty"`
	Resources []string `json:"resources,omitempty"`
	Patches   []struct {
		Path string `json:"path"`
	} `json:"patches,omitempty"`
	ConfigMapGenerator []struct {
		Name  string   `json:"name"`
		Files []string `json:"files"`
	} `json:"configMapGenerator,omitempty"`
	Images []struct {
		Name    string `json:"name"`
		NewName string `json:"newName,omitempty"`
		NewTag  string `json:"newTag,omitempty"`
	} `json:"images,omitempty"`
}

// readKustomization decodes dir/kustomization.yaml strictly.
func readKustomization(dir string) (kustomization, error) {
	var k kustomization
	data, err := os.ReadFile(filepath.Join(dir, "kustomization.yaml"))
	if err != nil {
		return k, fmt.Errorf("read kustomization: %w", err)
	}
	if err := yaml.UnmarshalStrict(data, &k); err != nil {
		return k, fmt.Errorf("decode %s/kustomization.yaml (a field the test resolver does not support?): %w", dir, err)
	}
	if k.APIVersion != "kustomize.config.k8s.io/v1beta1" || k.Kind != "Kustomization" {
		return k, fmt.Errorf("%s/kustomization.yaml: apiVersion/kind %q/%q", dir, k.APIVersion, k.Kind)
	}
	return k, nil
}

// kustomizeBuild builds the kustomization in dir, like `kustomize build dir`.
func kustomizeBuild(dir string) ([]object, error) {
	k, err := readKustomization(dir)
	if err != nil {
		return nil, err
	}
	var objs []object
	for _, r := range k.Resources {
		p := filepath.Join(dir, r)
		st, err := os.Stat(p)
		if err != nil {
			return nil, fmt.Errorf("resource %s of %s: %w", r, dir, err)
		}
		var got []object
		if st.IsDir() {
			got, err = kustomizeBuild(p)
		} else {
			got, err = readObjects(p)
		}
		if err != nil {
			return nil, err
		}
		objs = append(objs, got...)
	}
	for _, g := range k.ConfigMapGenerator {
		data := map[string]any{}
		for _, f := range g.Files {
			b, err := os.ReadFile(filepath.Join(dir, f))
			if err != nil {
				return nil, fmt.Errorf("configMapGenerator %s: %w", g.Name, err)
			}
			data[filepath.Base(f)] = string(b)
		}
		objs = append(objs, object{
			"apiVersion": "v1", "kind": "ConfigMap",
			"metadata": map[string]any{"name": g.Name},
			"data":     data,
		})
	}
	if err := checkUnique(objs); err != nil {
		return nil, fmt.Errorf("build %s: %w", dir, err)
	}
	for _, p := range k.Patches {
		patches, err := readObjects(filepath.Join(dir, p.Path))
		if err != nil {
			return nil, fmt.Errorf("patch %s of %s: %w", p.Path, dir, err)
		}
		if len(patches) != 1 {
			return nil, fmt.Errorf("patch %s of %s: want one document per patch file, got %d", p.Path, dir, len(patches))
		}
		if objs, err = applyPatch(objs, patches[0]); err != nil {
			return nil, fmt.Errorf("patch %s of %s: %w", p.Path, dir, err)
		}
	}
	for _, o := range objs {
		m := o.meta()
		if k.Namespace != "" && !clusterScoped[o.kind()] {
			m["namespace"] = k.Namespace
		}
		for _, l := range k.Labels {
			if l.IncludeSelectors {
				return nil, fmt.Errorf("%s: labels.includeSelectors is not supported by the test resolver", dir)
			}
			labels, _ := m["labels"].(map[string]any)
			if labels == nil {
				labels = map[string]any{}
				m["labels"] = labels
			}
			for key, v := range l.Pairs {
				labels[key] = v
			}
		}
		for _, img := range k.Images {
			forEachContainer(o, func(c map[string]any) {
				image, _ := c["image"].(string)
				name, tag := splitImage(image)
				if name != img.Name {
					return
				}
				if img.NewName != "" {
					name = img.NewName
				}
				if img.NewTag != "" {
					tag = img.NewTag
				}
				if tag != "" {
					name += ":" + tag
				}
				c["image"] = name
			})
		}
	}
	return objs, nil
}

// clusterScoped are the kinds kustomize's namespace leaves alone.
var clusterScoped = map[string]bool{"Namespace": true, "ClusterRole": true, "ClusterRoleBinding": true,
	"PersistentVolume": true, "StorageClass": true, "CustomResourceDefinition": true}

// splitImage splits "repo/name:tag" into name and tag (a registry port is
// not a tag).
func splitImage(image string) (name, tag string) {
	i := strings.LastIndex(image, ":")
	if i < 0 || strings.Contains(image[i:], "/") {
		return image, ""
	}
	return image[:i], image[i+1:]
}

// forEachContainer calls fn with every container of a pod template.
func forEachContainer(o object, fn func(c map[string]any)) {
	spec := podSpecOf(o)
	for _, key := range []string{"initContainers", "containers"} {
		list, _ := spec[key].([]any)
		for _, c := range list {
			if m, ok := c.(map[string]any); ok {
				fn(m)
			}
		}
	}
}

// podSpecOf returns spec.template.spec of a workload, or nil.
func podSpecOf(o object) map[string]any {
	spec, _ := o["spec"].(map[string]any)
	tmpl, _ := spec["template"].(map[string]any)
	ps, _ := tmpl["spec"].(map[string]any)
	return ps
}

func checkUnique(objs []object) error {
	seen := map[string]bool{}
	for _, o := range objs {
		if o.kind() == "" || o.name() == "" {
			return fmt.Errorf("object without kind or metadata.name: %v", o)
		}
		if seen[o.id()] {
			return fmt.Errorf("%s defined twice", o.id())
		}
		seen[o.id()] = true
	}
	return nil
}

// readObjects reads every YAML document in path.
func readObjects(path string) ([]object, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read: %w", err)
	}
	var out []object
	for _, doc := range splitDocs(data) {
		var o object
		if err := yaml.Unmarshal(doc, &o); err != nil {
			return nil, fmt.Errorf("decode %s: %w", path, err)
		}
		if len(o) > 0 {
			out = append(out, o)
		}
	}
	return out, nil
}

// splitDocs splits a YAML stream on lines that are exactly "---".
func splitDocs(data []byte) [][]byte {
	var docs [][]byte
	var cur bytes.Buffer
	for _, line := range bytes.SplitAfter(data, []byte("\n")) {
		if string(bytes.TrimRight(line, "\r\n")) == "---" {
			docs = append(docs, bytes.Clone(cur.Bytes()))
			cur.Reset()
			continue
		}
		cur.Write(line)
	}
	return append(docs, cur.Bytes())
}

// applyPatch applies one strategic-merge patch to the object it names.
func applyPatch(objs []object, patch object) ([]object, error) {
	for i, o := range objs {
		if o.apiVersion() != patch.apiVersion() || o.kind() != patch.kind() || o.name() != patch.name() {
			continue
		}
		if patch["$patch"] == "delete" {
			return append(objs[:i:i], objs[i+1:]...), nil
		}
		objs[i] = object(mergeMaps(o, patch))
		return objs, nil
	}
	return nil, fmt.Errorf("no object %s to patch", patch.id())
}

// listMergeKeys are the strategic-merge keys of the lists that the
// patches here touch; other lists are replaced whole.
var listMergeKeys = map[string]string{
	"containers":     "name",
	"initContainers": "name",
	"env":            "name",
	"volumes":        "name",
	"volumeMounts":   "mountPath",
}

func mergeMaps(dst, patch map[string]any) map[string]any {
	if dst == nil {
		dst = map[string]any{}
	}
	for k, pv := range patch {
		if k == "$patch" {
			continue
		}
		switch p := pv.(type) {
		case nil:
			delete(dst, k)
		case map[string]any:
			d, _ := dst[k].(map[string]any)
			dst[k] = mergeMaps(d, p)
		case []any:
			dst[k] = mergeList(listMergeKeys[k], dst[k], p)
		default:
			dst[k] = pv
		}
	}
	return dst
}

func mergeList(key string, base any, patch []any) []any {
	b, ok := base.([]any)
	if key == "" || !ok {
		return patch
	}
	out := append([]any(nil), b...)
	for _, pv := range patch {
		pm, ok := pv.(map[string]any)
		if !ok {
			return patch
		}
		found := false
		for i, bv := range out {
			if bm, ok := bv.(map[string]any); ok && bm[key] == pm[key] {
				out[i] = mergeMaps(bm, pm)
				found = true
				break
			}
		}
		if !found {
			out = append(out, mergeMaps(nil, pm))
		}
	}
	return out
}
