//go:build unix

package worker

import (
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"

	"github.com/greenq/greenq"
	"github.com/greenq/greenq/worker/executor"
)

// runAs holds the credentials jobs start with when Config.RunAsUser is set.
type runAs struct {
	cred *syscall.Credential
	home string
	name string
}

// lookupRunAs resolves name (a user name or numeric uid) to the uid, gid
// and supplementary groups jobs run with. The worker needs root for that;
// anything else is a configuration error naming the field.
func lookupRunAs(name string) (*runAs, error) {
	if name == "" {
		return nil, nil
	}
	u, err := user.Lookup(name)
	if err != nil {
		if u, err = user.LookupId(name); err != nil {
			return nil, greenq.Invalid("run_as_user", "no such user %q", name)
		}
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err1 != nil || err2 != nil {
		return nil, greenq.Invalid("run_as_user", "user %q has a non-numeric uid or gid", name)
	}
	if uid == 0 {
		return nil, greenq.Invalid("run_as_user", "%q is root; name an unprivileged user", name)
	}
	if os.Geteuid() != 0 {
		return nil, greenq.Invalid("run_as_user", "switching to %q needs the worker to run as root", name)
	}
	var groups []uint32
	if ids, err := u.GroupIds(); err == nil {
		for _, g := range ids {
			if n, err := strconv.ParseUint(g, 10, 32); err == nil {
				groups = append(groups, uint32(n))
			}
		}
	}
	return &runAs{cred: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: groups}, home: u.HomeDir, name: u.Username}, nil
}

// user is the identity the executor starts jobs as; nil without a user.
func (r *runAs) user() *executor.User {
	if r == nil {
		return nil
	}
	return &executor.User{UID: r.cred.Uid, GID: r.cred.Gid, Groups: r.cred.Groups}
}

// chown hands the job dirs it must write (checkpoint, output, work dirs).
func (r *runAs) chown(dirs ...string) error {
	if r == nil {
		return nil
	}
	for _, d := range dirs {
		if err := os.Chown(d, int(r.cred.Uid), int(r.cred.Gid)); err != nil {
			return fmt.Errorf("give %s to the job's user: %w", d, err)
		}
	}
	return nil
}

// chownTrees is chown for dirs and everything in them (a checkpoint the
// worker fetched for the job).
func (r *runAs) chownTrees(dirs ...string) error {
	if r == nil {
		return nil
	}
	for _, d := range dirs {
		err := filepath.WalkDir(d, func(p string, _ fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			return os.Lchown(p, int(r.cred.Uid), int(r.cred.Gid))
		})
		if err != nil {
			return fmt.Errorf("give %s to the job's user: %w", d, err)
		}
	}
	return nil
}
