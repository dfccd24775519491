package queue

import (
	"crypto/rand"
	"encoding/binary"
	"sync"
	"time"
)

// Job ids are 26 characters of lower-case Crockford base32: 48 bits of
// Unix milliseconds, then 80 random bits. They sort by creation time as
// strings (List pages newest first by id) and are unique across replicas.
// Within one process, ids made in the same millisecond increment the random
// part so they still sort in creation order.

const crockford = "0123456789abcdefghjkmnpqrstvwxyz"

type idSource struct {
	mu   sync.Mutex
	ms   uint64
	hi   uint16 // top 16 of the 80 random bits
	lo   uint64 // low 64
	read func([]byte) (int, error)
}

var ids = &idSource{read: rand.Read}

func (s *idSource) next(now time.Time) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	ms := uint64(now.UnixMilli())
	if ms <= s.ms {
		// Same (or an earlier, after a clock step) millisecond: keep order.
		ms = s.ms
		s.lo++
		if s.lo == 0 {
			s.hi++
			if s.hi == 0 {
				// 80 random bits used up: borrow the next millisecond.
				s.ms++
				ms = s.ms
			}
		}
	} else {
		var b [10]byte
		_, _ = s.read(b[:])
		s.hi = binary.BigEndian.Uint16(b[:2])
		s.lo = binary.BigEndian.Uint64(b[2:])
		s.ms = ms
	}
	return encodeID(ms, s.hi, s.lo)
}

// encodeID writes the 128-bit value ms(48) | hi(16) | lo(64) as 26 base32
// digits, most significant first.
func encodeID(ms uint64, hi uint16, lo uint64) string {
	// 128 bits = ms<<80 | hi<<64 | lo; 26×5 = 130 bits, top 2 are zero.
	top := ms<<16 | uint64(hi) // upper 64 bits
	var out [26]byte
	for i := 25; i >= 0; i-- {
		out[i] = crockford[lo&31]
		lo = lo>>5 | top<<59
		top >>= 5
	}
	return string(out[:])
}

// validID reports whether id looks like one of ours, so that user input
// never builds an odd Redis key.
func validID(id string) bool {
	if len(id) != 26 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z') || c == 'i' || c == 'l' || c == 'o' || c == 'u' {
			return false
		}
	}
	return true
}
