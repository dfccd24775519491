package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/greenq/greenq"
)

// apiClient speaks greenq's HTTP API as a notebook would.
type apiClient struct {
	base string
	hc   *http.Client
}

func newAPI(base string) *apiClient {
	return &apiClient{base: base, hc: &http.Client{Timeout: 10 * time.Second}}
}

// do sends a request with a JSON body (a []byte is sent as is) and returns
// the status and body. Like a well-behaved client it waits out 429s (the
// API limits each tenant's request rate, and tests poll).
func (a *apiClient) do(method, path string, body any) (int, []byte, error) {
	var data []byte
	switch b := body.(type) {
	case nil:
	case []byte:
		data = b
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			return 0, nil, err
		}
		data = raw
	}
	for tries := 0; ; tries++ {
		st, raw, wait, err := a.once(method, path, data, body != nil)
		if err != nil || st != http.StatusTooManyRequests || tries == 100 {
			return st, raw, err
		}
		time.Sleep(wait)
	}
}

func (a *apiClient) once(method, path string, data []byte, hasBody bool) (int, []byte, time.Duration, error) {
	var rd io.Reader
	if hasBody {
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, a.base+path, rd)
	if err != nil {
		return 0, nil, 0, err
	}
	if hasBody {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := a.hc.Do(req)
	if err != nil {
		return 0, nil, 0, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	wait := 200 * time.Millisecond
	if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s > 0 {
		wait = min(time.Duration(s)*time.Second, wait*5)
	}
	return resp.StatusCode, raw, wait, err
}

// submit posts req and returns the jobs created (201 required).
func (a *apiClient) submit(t testing.TB, req greenq.SubmitRequest) []*greenq.Job {
	t.Helper()
	st, raw, err := a.do("POST", "/v1/jobs", req)
	require.NoError(t, err)
	require.Equal(t, http.StatusCreated, st, "submit: %s", raw)
	return decodeJobs(t, raw)
}

func decodeJobs(t testing.TB, raw []byte) []*greenq.Job {
	t.Helper()
	var list struct {
		Jobs []*greenq.Job `json:"jobs"`
	}
	if json.Unmarshal(raw, &list) == nil && list.Jobs != nil {
		return list.Jobs
	}
	var j greenq.Job
	require.NoError(t, json.Unmarshal(raw, &j), "decode %s", raw)
	require.NotEmpty(t, j.ID, "decode %s", raw)
	return []*greenq.Job{&j}
}

// job returns job id, or nil and the error when the API cannot answer.
func (a *apiClient) job(id string) (*greenq.Job, error) {
	st, raw, err := a.do("GET", "/v1/jobs/"+url.PathEscape(id), nil)
	if err != nil {
		return nil, err
	}
	if st != http.StatusOK {
		return nil, fmt.Errorf("GET job %s: %d %s", id, st, raw)
	}
	var j greenq.Job
	if err := json.Unmarshal(raw, &j); err != nil {
		return nil, err
	}
	return &j, nil
}

// mustJob returns job id.
func (a *apiClient) mustJob(t *testing.T, id string) *greenq.Job {
	t.Helper()
	j, err := a.job(id)
	require.NoError(t, err)
	return j
}

// jobs lists every job (paging through).
func (a *apiClient) jobs(t *testing.T) []*greenq.Job {
	t.Helper()
	var all []*greenq.Job
	cursor := ""
	for {
		q := url.Values{"limit": {"1000"}}
		if cursor != "" {
			q.Set("cursor", cursor)
		}
		st, raw, err := a.do("GET", "/v1/jobs?"+q.Encode(), nil)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, st, "list: %s", raw)
		var page struct {
			Jobs       []*greenq.Job `json:"jobs"`
			NextCursor string        `json:"next_cursor"`
		}
		require.NoError(t, json.Unmarshal(raw, &page))
		all = append(all, page.Jobs...)
		if page.NextCursor == "" {
			return all
		}
		cursor = page.NextCursor
	}
}

// waitJob polls job id until cond holds (the job record is in another
// process: nothing to await but the record itself).
func (a *apiClient) waitJob(t *testing.T, id string, timeout time.Duration, what string, cond func(*greenq.Job) bool) *greenq.Job {
	t.Helper()
	var last *greenq.Job
	deadline := time.Now().Add(timeout)
	for {
		if j, err := a.job(id); err == nil {
			last = j
			if cond(j) {
				return j
			}
		}
		if time.Now().After(deadline) {
			b, _ := json.MarshalIndent(last, "", "  ")
			t.Fatalf("job %s: timed out after %s waiting for %s; last seen:\n%s", id, timeout, what, b)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitFinal waits for job id to reach a final state.
func (a *apiClient) waitFinal(t *testing.T, id string, timeout time.Duration) *greenq.Job {
	t.Helper()
	return a.waitJob(t, id, timeout, "a final state", func(j *greenq.Job) bool { return j.State.Final() })
}

// forecast is GET /v1/forecasts/{region}'s answer, as far as tests read it.
type forecastDoc struct {
	Region string `json:"region"`
	Source string `json:"source"`
	Points []struct {
		Start time.Time `json:"start"`
		Value float64   `json:"gco2_per_kwh"`
		Kind  string    `json:"kind"`
	} `json:"points"`
}

func (a *apiClient) forecast(region string) (forecastDoc, error) {
	var f forecastDoc
	st, raw, err := a.do("GET", "/v1/forecasts/"+region, nil)
	if err != nil {
		return f, err
	}
	if st != http.StatusOK {
		return f, fmt.Errorf("forecast %s: %d %s", region, st, raw)
	}
	return f, json.Unmarshal(raw, &f)
}

// capacity returns each region's live GPU capacity.
func (a *apiClient) capacity() map[string]int {
	st, raw, err := a.do("GET", "/v1/regions", nil)
	if err != nil || st != http.StatusOK {
		return nil
	}
	var doc struct {
		Regions []greenq.Region `json:"regions"`
	}
	if json.Unmarshal(raw, &doc) != nil {
		return nil
	}
	out := map[string]int{}
	for _, r := range doc.Regions {
		out[r.Name] = r.Capacity
	}
	return out
}

// waitReady waits until every region has a stored series (with points, when
// points is set) and at least one live worker GPU, so that the first plan
// sees what the test wrote.
func (a *apiClient) waitReady(t testing.TB, points bool, regions ...string) {
	t.Helper()
	waitFor(t, 30*time.Second, fmt.Sprintf("series and workers for %v", regions), func() bool {
		c := a.capacity()
		for _, r := range regions {
			if c[r] < 1 {
				return false
			}
			if f, err := a.forecast(r); err != nil || (points && len(f.Points) == 0) {
				return false
			}
		}
		return true
	})
}
