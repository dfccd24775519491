package queue

import (
	"bytes"
	"context"
	"fmt"
	"strconv"

	"github.com/greenq/greenq"
	"github.com/redis/go-redis/v9"
)

// A job's log is kept in three keys on the job's own hash tag:
//
//   - the head (a string), written first until it holds LogBytes/2;
//   - the tail (a list of chunks), the latest output, trimmed from the front
//     so it never holds more than the other half;
//   - a hash with cut (the bytes removed between head and tail; present
//     once the head is sealed) and tl (the tail's length).
//
// Offsets count bytes of the job's output as written: the head holds
// offsets [0, len(head)), the tail [len(head)+cut, len(head)+cut+len(tail)).
// A reader that asks from an offset gets what follows it, with a marker
// line where bytes it had not seen were cut, so a follower never repeats
// output nor skips it silently.

// logChunk is the largest tail list element; trimming rewrites at most one.
const logChunk = 16 << 10

// logNear is how far from the cut point a newline is looked for, so the
// head ends and the tail starts on whole lines; further off, the cut is at
// the byte.
const logNear = 4 << 10

// Log is what is kept of a job's output from some offset on.
type Log struct {
	// Data is the output from the offset asked for: what is kept, with the
	// line "… N bytes cut …" where N bytes the reader had not seen are gone.
	Data []byte
	// Offset is how many bytes of output the job has written: the offset to
	// ask from next.
	Offset int64
	// Cut is how many bytes the stored log has dropped in all (0: it holds
	// the whole output).
	Cut int64
	// Skipped is how many bytes after the offset asked for Data lacks: N in
	// its marker, 0 when it has none. When the offset was itself inside the
	// cut, Data starts with the marker.
	Skipped int64
	// State is the job's state, read before the log: once it is final the
	// log is complete.
	State greenq.State
}

// CutMarker is the line that stands for n bytes of output cut from a log.
func CutMarker(n int64) string { return fmt.Sprintf("… %d bytes cut …\n", n) }

// logAppendScript appends to a job's log: ARGV[1] goes to the head while it
// has room, the rest to the tail; then ARGV[2] bytes the writer lost, then
// ARGV[3]. A loss seals the head and drops the tail written before it, so
// the tail is always the contiguous end of the output. The head is sealed
// at its last newline within near bytes of its end, and a trimmed tail
// starts after its first newline within near bytes of the cut.
//
// KEYS: head, tail, meta. ARGV: p, lost, q, head max, tail max, near, chunk.
var logAppendScript = redis.NewScript(`
local head, tail, meta = KEYS[1], KEYS[2], KEYS[3]
local p, lost, q = ARGV[1], tonumber(ARGV[2]), ARGV[3]
local hmax, tmax, near, chunk = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])

local function toHead(s, seal)
  if redis.call('HEXISTS', meta, 'cut') == 1 then return s end
  local hl = redis.call('STRLEN', head)
  local room = math.max(hmax - hl, 0)
  if #s <= room and not seal then
    if #s > 0 then redis.call('APPEND', head, s) end
    return ''
  end
  local e = hl + math.min(#s, room)
  local ws = math.max(0, e - near)
  local win = ''
  if ws < hl then win = redis.call('GETRANGE', head, ws, hl - 1) end
  win = win .. string.sub(s, math.max(ws - hl, 0) + 1, e - hl)
  local r = string.find(string.reverse(win), '\n', 1, true)
  if r then e = ws + #win - r + 1 end
  local rest
  if e >= hl then
    if e > hl then redis.call('APPEND', head, string.sub(s, 1, e - hl)) end
    rest = string.sub(s, e - hl + 1)
  else
    rest = redis.call('GETRANGE', head, e, hl - 1) .. s
    if e > 0 then redis.call('SET', head, redis.call('GETRANGE', head, 0, e - 1)) else redis.call('DEL', head) end
  end
  redis.call('HSET', meta, 'cut', 0, 'tl', 0)
  return rest
end

-- dropFront removes n bytes from the front of the tail and returns the
-- last byte removed.
local function dropFront(n)
  local last = ''
  while n > 0 do
    local first = redis.call('LINDEX', tail, 0)
    if not first then break end
    if #first <= n then
      redis.call('LPOP', tail)
      n = n - #first
      last = string.sub(first, -1)
    else
      last = string.sub(first, n, n)
      redis.call('LSET', tail, 0, string.sub(first, n + 1))
      n = 0
    end
  end
  return last
end

-- toLine returns how many bytes from the front of the tail end with its
-- first newline, looking at most limit bytes; nil if none.
local function toLine(limit)
  local seen, i = 0, 0
  while seen < limit do
    local c = redis.call('LINDEX', tail, i)
    if not c then return nil end
    local s = string.sub(c, 1, limit - seen)
    local j = string.find(s, '\n', 1, true)
    if j then return seen + j end
    seen = seen + #s
    i = i + 1
  end
  return nil
end

-- trimTail keeps at most keep bytes of the tail, starting on a line;
-- atLine says whether the tail's first byte starts one now.
local function trimTail(keep, atLine)
  local tl = tonumber(redis.call('HGET', meta, 'tl'))
  local drop = math.max(0, tl - keep)
  if drop > 0 then atLine = dropFront(drop) == '\n' end
  if not atLine then
    local n = toLine(near)
    if n then
      dropFront(n)
      drop = drop + n
    end
  end
  if drop > 0 then
    redis.call('HINCRBY', meta, 'cut', drop)
    redis.call('HINCRBY', meta, 'tl', -drop)
  end
end

local rest = toHead(p, lost > 0)
local atLine = true
if lost > 0 then
  local tl = tonumber(redis.call('HGET', meta, 'tl'))
  redis.call('DEL', tail)
  redis.call('HINCRBY', meta, 'cut', tl + #rest + lost)
  redis.call('HSET', meta, 'tl', 0)
  rest, atLine = q, false
end
for i = 1, #rest, chunk do
  redis.call('RPUSH', tail, string.sub(rest, i, i + chunk - 1))
end
if #rest > 0 then redis.call('HINCRBY', meta, 'tl', #rest) end
if #rest > 0 or lost > 0 then trimTail(tmax, atLine) end
return 1
`)

// logReadScript reads a job's log from offset ARGV[1]: the head's length,
// the bytes cut, the tail's length, the head from the offset, the tail from
// the offset, and the byte before the offset when the head holds it.
var logReadScript = redis.NewScript(`
local off = tonumber(ARGV[1])
local hl = redis.call('STRLEN', KEYS[1])
local cut = tonumber(redis.call('HGET', KEYS[3], 'cut') or '0')
local items = redis.call('LRANGE', KEYS[2], 0, -1)
local tl = 0
for _, c in ipairs(items) do tl = tl + #c end
local ts = hl + cut
if off > ts + tl then return {hl, cut, tl, '', '', ''} end
local h, prev = '', ''
if off < hl then h = redis.call('GETRANGE', KEYS[1], off, hl - 1) end
if off > 0 and off <= hl then prev = redis.call('GETRANGE', KEYS[1], off - 1, off - 1) end
local from = math.max(0, off - ts)
local parts, pos = {}, 0
for _, c in ipairs(items) do
  local e = pos + #c
  if e > from then
    if pos >= from then parts[#parts + 1] = c else parts[#parts + 1] = string.sub(c, from - pos + 1) end
  end
  pos = e
end
return {hl, cut, tl, h, table.concat(parts), prev}
`)

func (s *Store) logKeys(id string) []string {
	return []string{s.k.log(id), s.k.logTail(id), s.k.logMeta(id)}
}

// Logs returns job id's kept output: all of it up to Config.LogBytes, else
// its head and tail with the cut marker line between them.
func (s *Store) Logs(ctx context.Context, tenant, id string) ([]byte, error) {
	l, err := s.LogsFrom(ctx, tenant, id, 0)
	if err != nil {
		return nil, err
	}
	return l.Data, nil
}

// LogsFrom returns job id's kept output after the first offset bytes (see
// Log), for a reader that has seen those. An offset below 0 or past the
// end of the output gives CodeInvalidArgument naming "offset"; a job of
// another tenant, greenq.ErrNotFound.
func (s *Store) LogsFrom(ctx context.Context, tenant, id string, offset int64) (*Log, error) {
	if offset < 0 {
		return nil, greenq.Invalid("offset", "must be a byte count ≥ 0, got %d", offset)
	}
	// The state is read first: a final job's worker has written all of its
	// output before it recorded the end.
	j, err := s.Get(ctx, tenant, id)
	if err != nil {
		return nil, fmt.Errorf("logs: %w", err)
	}
	res, err := logReadScript.Run(ctx, s.rdb, s.logKeys(id), offset).Slice()
	if err != nil {
		return nil, redisErr("logs", err)
	}
	if len(res) != 6 {
		return nil, fmt.Errorf("logs: read script answered %d values, want 6", len(res))
	}
	hl, cut, tl := toInt64(res[0]), toInt64(res[1]), toInt64(res[2])
	head, tail, prev := toString(res[3]), toString(res[4]), toString(res[5])
	l := &Log{Offset: hl + cut + tl, Cut: cut, State: j.State}
	if offset > l.Offset {
		return nil, greenq.Invalid("offset", "is past the end of the log (%d bytes written so far), got %d", l.Offset, offset)
	}
	switch {
	case offset < hl:
		l.Skipped = cut
	case offset < hl+cut:
		l.Skipped = hl + cut - offset
	}
	var b bytes.Buffer
	b.Grow(len(head) + len(tail) + 64)
	b.WriteString(head)
	if l.Skipped > 0 {
		// The marker gets a line of its own. From an offset inside the cut
		// the byte before it is gone: Data starts with the marker, and a
		// follower whose output does not end a line prints a newline first.
		lineStart := offset == 0 || offset > hl || prev == "\n"
		if head != "" {
			lineStart = head[len(head)-1] == '\n'
		}
		if !lineStart {
			b.WriteByte('\n')
		}
		b.WriteString(CutMarker(l.Skipped))
	}
	b.WriteString(tail)
	l.Data = b.Bytes()
	return l, nil
}

// AppendLog adds p to job id's output. The log keeps the first half of
// Config.LogBytes as written and the latest half, cutting between them.
func (s *Store) AppendLog(ctx context.Context, id string, p []byte) error {
	return s.AppendLogCut(ctx, id, p, 0, nil)
}

// AppendLogCut adds output to job id's log for a writer that lost part of
// it: p, then lost bytes that are gone (counted in the log's cut marker),
// then q. With lost 0 it is AppendLog of p and q.
func (s *Store) AppendLogCut(ctx context.Context, id string, p []byte, lost int64, q []byte) error {
	if !validID(id) {
		return notFound(id)
	}
	if lost < 0 {
		return greenq.Invalid("lost", "must be ≥ 0, got %d", lost)
	}
	if lost == 0 && len(q) > 0 {
		p = append(p[:len(p):len(p)], q...)
		q = nil
	}
	// Only the first headMax and last tailMax bytes of one write can be
	// kept; the middle need not travel.
	if lost == 0 && len(p) > s.logHead+s.logTail {
		lost = int64(len(p) - s.logHead - s.logTail)
		p, q = p[:s.logHead], p[len(p)-s.logTail:]
	}
	if lost > 0 {
		if len(p) > s.logHead {
			lost += int64(len(p) - s.logHead)
			p = p[:s.logHead]
		}
		if len(q) > s.logTail {
			lost += int64(len(q) - s.logTail)
			q = q[len(q)-s.logTail:]
		}
	}
	if len(p) == 0 && lost == 0 {
		return nil
	}
	near := max(1, min(logNear, s.logHead/4, s.logTail/4))
	err := logAppendScript.Run(ctx, s.rdb, s.logKeys(id), p, lost, q, s.logHead, s.logTail, near, logChunk).Err()
	if err != nil {
		return redisErr("append log", err)
	}
	return nil
}

func toInt64(v any) int64 {
	switch n := v.(type) {
	case int64:
		return n
	case string:
		i, _ := strconv.ParseInt(n, 10, 64)
		return i
	}
	return 0
}

func toString(v any) string {
	s, _ := v.(string)
	return s
}
