package gitlabsim

import (
	"math"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// faults are the injected failures. They live outside the world so that
// injecting one never changes what the world holds.
type faults struct {
	seed     uint64
	seq      atomic.Uint64 // /api/v4 requests seen, numbering the draws
	failRate atomic.Uint64 // math.Float64bits
	timeRate atomic.Uint64
	hang     atomic.Int64

	mu       sync.RWMutex
	projects map[string]int // project id and full path -> 403 or 404
}

func (f *faults) init(o Options) {
	f.seed = uint64(o.Seed)
	f.failRate.Store(math.Float64bits(o.FailRate))
	f.timeRate.Store(math.Float64bits(o.TimeoutRate))
	f.hang.Store(int64(o.Hang))
	f.projects = map[string]int{}
}

// SetFailRate makes that fraction of /api/v4 requests answer 500, 502 or
// 503 before doing anything else; 0 turns it off.
func (s *Sim) SetFailRate(f float64) { s.faults.failRate.Store(math.Float64bits(f)) }

// SetTimeoutRate makes that fraction of /api/v4 requests hang for the Hang
// duration (or until the client cancels) and then answer 504; 0 turns it
// off.
func (s *Sim) SetTimeoutRate(f float64) { s.faults.timeRate.Store(math.Float64bits(f)) }

// SetHang changes how long a timed-out request hangs.
func (s *Sim) SetHang(d time.Duration) { s.faults.hang.Store(int64(d)) }

// SetProjectFault makes every request under the project (by numeric id or
// full path), the project itself included, answer status: 404 (the project
// is also left out of listings, as for a project the token lost access to)
// or 403. Status 0 clears it. Any other status is treated as 404.
func (s *Sim) SetProjectFault(idOrPath string, status int) {
	keys := []string{idOrPath}
	s.mu.RLock()
	if p := s.findProject(idOrPath); p != nil {
		keys = []string{strconv.FormatInt(p.id, 10), p.fullPath()}
	}
	s.mu.RUnlock()
	if status != 0 && status != http.StatusForbidden {
		status = http.StatusNotFound
	}
	s.faults.mu.Lock()
	defer s.faults.mu.Unlock()
	for _, k := range keys {
		if status == 0 {
			delete(s.faults.projects, k)
		} else {
			s.faults.projects[k] = status
		}
	}
}

// projectFault is the status injected for the project given by id or path,
// or 0.
func (s *Sim) projectFault(idOrPath string) int {
	s.faults.mu.RLock()
	defer s.faults.mu.RUnlock()
	return s.faults.projects[idOrPath]
}

// hidden reports whether p is left out of listings.
func (s *Sim) hidden(p *project) bool {
	s.faults.mu.RLock()
	defer s.faults.mu.RUnlock()
	if len(s.faults.projects) == 0 {
		return false
	}
	return s.faults.projects[strconv.FormatInt(p.id, 10)] == http.StatusNotFound
}

// draw is a uniform number in [0, 1) for request n and purpose k,
// reproducible from the seed.
func (f *faults) draw(n, k uint64) float64 {
	return float64(mix(f.seed, n, k)>>11) / (1 << 53)
}

// inject answers the request with a fault if its draw says so, and reports
// whether it did. It runs before anything else the request would do.
func (s *Sim) inject(w http.ResponseWriter, r *http.Request) bool {
	f := &s.faults
	n := f.seq.Add(1)
	if rate := math.Float64frombits(f.timeRate.Load()); rate > 0 && f.draw(n, 1) < rate {
		t := time.NewTimer(time.Duration(f.hang.Load()))
		defer t.Stop()
		select {
		case <-r.Context().Done():
			return true
		case <-t.C:
		}
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(http.StatusGatewayTimeout)
		_, _ = w.Write([]byte(gatewayTimeoutPage))
		return true
	}
	if rate := math.Float64frombits(f.failRate.Load()); rate > 0 && f.draw(n, 2) < rate {
		switch mix(f.seed, n, 3) % 3 {
		case 0:
			writeJSON(w, http.StatusInternalServerError, map[string]string{"message": "500 Internal Server Error"})
		case 1:
			// Workhorse's answer when Puma does not respond: an HTML page.
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			w.WriteHeader(http.StatusBadGateway)
			_, _ = w.Write([]byte(badGatewayPage))
		default:
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"message": "503 Service Unavailable"})
		}
		return true
	}
	return false
}

const badGatewayPage = `<!DOCTYPE html>
<html>
<head><title>GitLab is not responding (502)</title></head>
<body><h1>502</h1><h3>GitLab is not responding.</h3><hr><p>Please contact your GitLab administrator if this problem persists.</p></body>
</html>
`

const gatewayTimeoutPage = `<html>
<head><title>504 Gateway Time-out</title></head>
<body><center><h1>504 Gateway Time-out</h1></center></body>
</html>
`

// mix is a splitmix-style hash: the simulator derives details it does not
// store (shas, sizes, diff lines) from it, so they are stable without
// costing memory.
func mix(a, b, c uint64) uint64 {
	h := a*0x9e3779b97f4a7c15 ^ b*0xc2b2ae3d27d4eb4f ^ c*0x165667b19e3779f9
	h ^= h >> 30
	h *= 0xbf58476d1ce4e5b9
	h ^= h >> 27
	h *= 0x94d049bb133111eb
	h ^= h >> 31
	return h
}
