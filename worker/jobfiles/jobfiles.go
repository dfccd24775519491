package jobfiles

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"gocloud.dev/blob"
	_ "gocloud.dev/blob/fileblob" // file:// locations
	_ "gocloud.dev/blob/s3blob"   // s3:// locations
	"gocloud.dev/gcerrors"
)

// File is one file of a job's set, relative to its directory.
type File struct {
	Path    string    `json:"path"`
	Bytes   int64     `json:"bytes"`
	ModTime time.Time `json:"mod_time"`
}

// Location is a root under which each job has its own set of files.
type Location struct {
	raw    string
	dir    string       // shared directory, used in place; or
	bucket *blob.Bucket // object store
	prefix string       // key prefix within the bucket, "" or ending in "/"
}

// Open opens a location: an absolute directory path or an object-store URL
// (scheme://bucket/prefix?options). A directory is created if missing.
func Open(ctx context.Context, loc string) (*Location, error) {
	if loc == "" {
		return nil, errors.New("open job files: no location")
	}
	if !strings.Contains(loc, "://") {
		if !filepath.IsAbs(loc) {
			return nil, fmt.Errorf("open job files: %q is neither an absolute directory nor a URL", loc)
		}
		if err := os.MkdirAll(loc, 0o755); err != nil {
			return nil, fmt.Errorf("open job files: %w", err)
		}
		return &Location{raw: loc, dir: filepath.Clean(loc)}, nil
	}
	u, err := url.Parse(loc)
	if err != nil {
		return nil, fmt.Errorf("open job files: %w", err)
	}
	prefix := ""
	if u.Scheme != "file" {
		// scheme://bucket/some/prefix: the path is a key prefix.
		prefix = strings.Trim(u.Path, "/")
		u.Path = ""
	} else if err := os.MkdirAll(u.Path, 0o755); err != nil {
		return nil, fmt.Errorf("open job files: %w", err)
	}
	b, err := blob.OpenBucket(ctx, u.String())
	if err != nil {
		return nil, fmt.Errorf("open job files %s: %w", loc, err)
	}
	if prefix != "" {
		prefix += "/"
	}
	return &Location{raw: loc, bucket: b, prefix: prefix}, nil
}

// Close releases the bucket.
func (l *Location) Close() error {
	if l.bucket == nil {
		return nil
	}
	return l.bucket.Close()
}

// String is the location as configured.
func (l *Location) String() string { return l.raw }

// Shared reports whether the location is a directory used in place (no
// pull or push).
func (l *Location) Shared() bool { return l.bucket == nil }

// Where is job's place in the location, for people: a directory or a URL.
func (l *Location) Where(job string) string {
	if l.Shared() {
		return filepath.Join(l.dir, job)
	}
	u, _ := url.Parse(l.raw)
	u.Path = strings.TrimSuffix(u.Path, "/") + "/" + job + "/"
	return u.String()
}

// Root returns the location of which where (a job's Where) is part, for
// a client that has only the job's record.
func Root(where, job string) (string, bool) {
	for _, suffix := range []string{"/" + job + "/", "/" + job} {
		if root, ok := strings.CutSuffix(where, suffix); ok {
			return root, true
		}
	}
	return "", false
}

// Dir returns the directory a run of job uses: the shared one itself, or
// staging under local (a worker directory) for an object store.
func (l *Location) Dir(job, local string) string {
	if l.Shared() {
		return filepath.Join(l.dir, job)
	}
	return local
}

func (l *Location) key(job, rel string) string {
	return l.prefix + job + "/" + filepath.ToSlash(rel)
}

// Pull copies job's objects into dir (nothing to do for a shared directory
// but create it).
func (l *Location) Pull(ctx context.Context, job, dir string) error {
	if err := os.MkdirAll(l.Dir(job, dir), 0o700); err != nil {
		return fmt.Errorf("pull %s: %w", job, err)
	}
	if l.Shared() {
		return nil
	}
	it := l.bucket.List(&blob.ListOptions{Prefix: l.prefix + job + "/"})
	for {
		obj, err := it.Next(ctx)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("pull %s: list: %w", job, err)
		}
		if obj.IsDir {
			continue
		}
		rel := strings.TrimPrefix(obj.Key, l.prefix+job+"/")
		dst, err := safeJoin(dir, rel)
		if err != nil {
			return fmt.Errorf("pull %s: %w", job, err)
		}
		if err := l.download(ctx, obj.Key, dst); err != nil {
			return fmt.Errorf("pull %s: %w", job, err)
		}
	}
}

// Fetch copies all of job's files into dir, whatever the location (a
// shared directory is copied too): for a client downloading outputs.
func (l *Location) Fetch(ctx context.Context, job, dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("fetch %s: %w", job, err)
	}
	if !l.Shared() {
		return l.Pull(ctx, job, dir)
	}
	files, err := l.List(ctx, job)
	if err != nil {
		return fmt.Errorf("fetch %s: %w", job, err)
	}
	for _, f := range files {
		dst, err := safeJoin(dir, f.Path)
		if err != nil {
			return fmt.Errorf("fetch %s: %w", job, err)
		}
		if err := copyFile(filepath.Join(l.dir, job, filepath.FromSlash(f.Path)), dst); err != nil {
			return fmt.Errorf("fetch %s: %w", job, err)
		}
	}
	return nil
}

func copyFile(src, dst string) error {
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

func (l *Location) download(ctx context.Context, key, dst string) error {
	if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
		return err
	}
	r, err := l.bucket.NewReader(ctx, key, nil)
	if err != nil {
		return err
	}
	defer r.Close()
	f, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, r); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// Push copies dir to job's objects and deletes objects no longer in dir,
// so the location holds what the job left, as a checkpoint must (nothing
// to do for a shared directory).
func (l *Location) Push(ctx context.Context, job, dir string) error {
	return l.push(ctx, job, dir, true)
}

// Upload copies dir to job's objects, keeping objects dir no longer has
// (outputs of earlier runs of the job).
func (l *Location) Upload(ctx context.Context, job, dir string) error {
	return l.push(ctx, job, dir, false)
}

func (l *Location) push(ctx context.Context, job, dir string, mirror bool) error {
	if l.Shared() {
		return nil
	}
	local, err := listDir(dir)
	if err != nil {
		return fmt.Errorf("push %s: %w", job, err)
	}
	keep := map[string]bool{}
	for _, f := range local {
		key := l.key(job, f.Path)
		keep[key] = true
		if err := l.upload(ctx, filepath.Join(dir, f.Path), key); err != nil {
			return fmt.Errorf("push %s: %w", job, err)
		}
	}
	if !mirror {
		return nil
	}
	remote, err := l.list(ctx, job)
	if err != nil {
		return fmt.Errorf("push %s: %w", job, err)
	}
	for _, f := range remote {
		if key := l.key(job, f.Path); !keep[key] {
			if err := l.bucket.Delete(ctx, key); err != nil && gcerrors.Code(err) != gcerrors.NotFound {
				return fmt.Errorf("push %s: delete %s: %w", job, f.Path, err)
			}
		}
	}
	return nil
}

func (l *Location) upload(ctx context.Context, src, key string) error {
	// The job wrote dir; a link it swapped in after the listing must not
	// make the worker upload a file the job could not read.
	f, err := os.OpenFile(src, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	if st, err := f.Stat(); err != nil || !st.Mode().IsRegular() {
		return fmt.Errorf("%s is not a regular file", src)
	}
	w, err := l.bucket.NewWriter(ctx, key, nil)
	if err != nil {
		return err
	}
	if _, err := io.Copy(w, f); err != nil {
		w.Close()
		return err
	}
	return w.Close()
}

// List returns job's files, sorted by path.
func (l *Location) List(ctx context.Context, job string) ([]File, error) {
	if l.Shared() {
		files, err := listDir(filepath.Join(l.dir, job))
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
		return files, err
	}
	return l.list(ctx, job)
}

func (l *Location) list(ctx context.Context, job string) ([]File, error) {
	var out []File
	p := l.prefix + job + "/"
	it := l.bucket.List(&blob.ListOptions{Prefix: p})
	for {
		obj, err := it.Next(ctx)
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("list %s: %w", job, err)
		}
		if !obj.IsDir {
			out = append(out, File{Path: strings.TrimPrefix(obj.Key, p), Bytes: obj.Size, ModTime: obj.ModTime})
		}
	}
}

// Delete removes all of job's files.
func (l *Location) Delete(ctx context.Context, job string) error {
	if l.Shared() {
		return os.RemoveAll(filepath.Join(l.dir, job))
	}
	files, err := l.list(ctx, job)
	if err != nil {
		return err
	}
	for _, f := range files {
		if err := l.bucket.Delete(ctx, l.key(job, f.Path)); err != nil && gcerrors.Code(err) != gcerrors.NotFound {
			return fmt.Errorf("delete %s: %w", job, err)
		}
	}
	return nil
}

// Jobs lists the jobs that have files in the location, with the newest
// modification time of each.
func (l *Location) Jobs(ctx context.Context) (map[string]time.Time, error) {
	out := map[string]time.Time{}
	if l.Shared() {
		entries, err := os.ReadDir(l.dir)
		if err != nil {
			return nil, err
		}
		for _, e := range entries {
			if !e.IsDir() {
				continue
			}
			files, err := listDir(filepath.Join(l.dir, e.Name()))
			if err != nil {
				continue
			}
			out[e.Name()] = newest(files)
		}
		return out, nil
	}
	it := l.bucket.List(&blob.ListOptions{Prefix: l.prefix})
	for {
		obj, err := it.Next(ctx)
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		job, _, ok := strings.Cut(strings.TrimPrefix(obj.Key, l.prefix), "/")
		if ok && obj.ModTime.After(out[job]) {
			out[job] = obj.ModTime
		}
	}
}

func newest(files []File) time.Time {
	var t time.Time
	for _, f := range files {
		if f.ModTime.After(t) {
			t = f.ModTime
		}
	}
	return t
}

// listDir lists the regular files under dir, relative, sorted.
func listDir(dir string) ([]File, error) {
	var out []File
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		out = append(out, File{Path: filepath.ToSlash(rel), Bytes: info.Size(), ModTime: info.ModTime()})
		return nil
	})
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out, err
}

// safeJoin joins a key's relative path under dir, refusing one that would
// leave it.
func safeJoin(dir, rel string) (string, error) {
	clean := path.Clean("/" + rel)
	if clean == "/" || strings.Contains(rel, "\x00") {
		return "", fmt.Errorf("object %q has no file name", rel)
	}
	return filepath.Join(dir, filepath.FromSlash(clean)), nil
}
