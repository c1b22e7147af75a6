package gitlabsim

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// registryRepo is a container registry repository: the project's root
// image. Its tags are kept sorted by name, as the registry lists them.
type registryRepo struct {
	id        int64
	p         *project
	name      string
	createdAt time.Time
	tags      []*imageTag
}

// imageTag is a pushed tag. A tag name is pushed once and never again
// with another digest, so "store equals truth" stays well defined.
type imageTag struct {
	name      string
	rp        *registryRepo
	createdAt time.Time
}

func (w *world) newRegistryRepo(p *project) *registryRepo {
	rp := &registryRepo{id: w.nextRepoID, p: p, createdAt: p.root.Add(2 * time.Hour)}
	w.nextRepoID++
	return rp
}

func (rp *registryRepo) path() string {
	if rp.name == "" {
		return rp.p.fullPath()
	}
	return rp.p.fullPath() + "/" + rp.name
}

// push adds tag name at t unless it exists already.
func (rp *registryRepo) push(name string, t time.Time) {
	i, found := slices.BinarySearchFunc(rp.tags, name, func(t *imageTag, n string) int { return strings.Compare(t.name, n) })
	if found {
		return
	}
	rp.tags = slices.Insert(rp.tags, i, &imageTag{name: name, rp: rp, createdAt: t})
	rp.p.seen(t)
}

func (t *imageTag) revision() string {
	h := uint64(14695981039346656037)
	for i := 0; i < len(t.name); i++ {
		h = (h ^ uint64(t.name[i])) * 1099511628211
	}
	return t.rp.p.sha(h, uint64(t.rp.id)) + t.rp.p.sha(h, uint64(t.rp.id)+1)[:24]
}

func (t *imageTag) digest() string { return "sha256:" + t.revision() }

func (t *imageTag) size() int64 {
	return 20_000_000 + int64(mix(uint64(t.rp.id), uint64(len(t.name)), uint64(t.createdAt.UnixMilli()))%180_000_000)
}

func (rp *registryRepo) location(base string) string {
	return fmt.Sprintf("registry.%s/%s", hostOf(base), rp.path())
}
