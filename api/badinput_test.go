package api

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestBadSubmissions sends refused submissions: each must get a 4xx naming
// the field, and leave the store empty.
func TestBadSubmissions(t *testing.T) {
	t.Parallel()
	const cmd = `"command":["python","train.py"]`
	const dl = `"deadline":"24h"`
	job := func(extra string) string { return `{` + cmd + `,` + dl + `,` + extra + `}` }
	past := testNow.Add(-time.Hour).Format(time.RFC3339)
	far := testNow.Add(365 * 24 * time.Hour).Format(time.RFC3339)
	cases := []struct {
		name   string
		body   string
		status int
		field  string
	}{
		{"empty body", ``, 400, "body"},
		{"whitespace body", "  \n", 400, "body"},
		{"not json", `hello`, 400, "body"},
		{"truncated", `{"command":["x"],"deadline":"24h"`, 400, "body"},
		{"trailing data", `{` + cmd + `,` + dl + `} {"again":1}`, 400, "body"},
		{"trailing garbage", `{` + cmd + `,` + dl + `}x`, 400, "body"},
		{"array body", `[` + `{` + cmd + `,` + dl + `}]`, 400, "body"},
		{"string body", `"job"`, 400, "body"},
		{"unknown field", job(`"gpu":2`), 400, "gpu"},
		{"unknown field in batch", `{"jobs":[` + job(`"colour":"red"`) + `]}`, 400, "colour"},
		{"command missing", `{` + dl + `}`, 400, "command"},
		{"command empty", `{"command":[],` + dl + `}`, 400, "command"},
		{"command empty program", `{"command":[""],` + dl + `}`, 400, "command"},
		{"command is a string", `{"command":"python train.py",` + dl + `}`, 400, "command"},
		{"command NUL byte", `{"command":["python","a\u0000b"],` + dl + `}`, 400, "command"},
		{"command too many args", `{"command":[` + strings.Repeat(`"a",`, 1024) + `"a"],` + dl + `}`, 400, "command"},
		{"command too long", `{"command":["` + strings.Repeat("a", 70000) + `"],` + dl + `}`, 400, "command"},
		{"deadline missing", `{` + cmd + `}`, 400, "deadline"},
		{"deadline empty", `{` + cmd + `,"deadline":""}`, 400, "deadline"},
		{"deadline garbage", `{` + cmd + `,"deadline":"tomorrow"}`, 400, "deadline"},
		{"deadline in the past", `{` + cmd + `,"deadline":"` + past + `"}`, 400, "deadline"},
		{"deadline negative duration", `{` + cmd + `,"deadline":"-1h"}`, 400, "deadline"},
		{"deadline zero", `{` + cmd + `,"deadline":"0s"}`, 400, "deadline"},
		{"deadline absurdly far", `{` + cmd + `,"deadline":"` + far + `"}`, 400, "deadline"},
		{"deadline far as duration", `{` + cmd + `,"deadline":"100000h"}`, 400, "deadline"},
		{"deadline a number", `{` + cmd + `,"deadline":24}`, 400, "deadline"},
		{"deadline shorter than duration", job(`"duration_estimate_s":90000`), 400, "deadline"},
		{"negative gpus", job(`"gpus":-1`), 400, "gpus"},
		{"too many gpus", job(`"gpus":5000`), 400, "gpus"},
		{"fractional gpus", job(`"gpus":1.5`), 400, "gpus"},
		{"gpus overflow", job(`"gpus":1e30`), 400, "gpus"},
		{"gpus as string", job(`"gpus":"2"`), 400, "gpus"},
		{"negative duration", job(`"duration_estimate_s":-5`), 400, "duration_estimate_s"},
		{"duration absurd", job(`"duration_estimate_s":99999999999`), 400, "duration_estimate_s"},
		{"negative trials", job(`"trials":-3`), 400, "trials"},
		{"too many trials", job(`"trials":1001`), 400, "trials"},
		{"unknown region", job(`"regions":["mars"]`), 400, "regions"},
		{"regions not array", job(`"regions":"uk"`), 400, "regions"},
		{"unknown kind", job(`"kind":"play"`), 400, "kind"},
		{"oversized name", job(`"name":"` + strings.Repeat("n", 201) + `"`), 400, "name"},
		{"NUL in name", job(`"name":"a\u0000b"`), 400, "name"},
		{"invalid UTF-8 in name", `{` + cmd + `,` + dl + `,"name":"bad` + "\xff\xfe" + `"}`, 400, "name"},
		{"invalid UTF-8 in command", `{"command":["py` + "\xc3\x28" + `"],` + dl + `}`, 400, "command"},
		{"negative max price", job(`"max_price_usd_per_gpu_hour":-1`), 400, "max_price_usd_per_gpu_hour"},
		{"negative power", job(`"power_w":-300`), 400, "power_w"},
		{"absurd power", job(`"power_w":1e9`), 400, "power_w"},
		{"interruptible not bool", job(`"interruptible":"yes"`), 400, "interruptible"},
		{"too many tags", job(`"tags":{` + manyTags(33) + `}`), 400, "tags"},
		{"tag with equals", job(`"tags":{"a=b":"c"}`), 400, "tags"},
		{"oversized key", job(`"key":"` + strings.Repeat("k", 201) + `"`), 400, "key"},
		{"batch empty", `{"jobs":[]}`, 400, "jobs"},
		{"batch and fields", `{"jobs":[` + job(``[:0]+`"name":"x"`) + `],` + cmd + `}`, 400, "jobs"},
		{"batch one bad", `{"jobs":[{` + cmd + `,` + dl + `},{` + cmd + `,"deadline":"-1h"}]}`, 400, "jobs[1].deadline"},
		{"batch too many trials", `{"jobs":[` + job(`"trials":600`) + `,` + job(`"trials":600`) + `]}`, 400, "jobs"},
		{"huge body", `{` + cmd + `,` + dl + `,"name":"` + strings.Repeat("a", 4<<20) + `"}`, 413, "body"},
	}
	require.GreaterOrEqual(t, len(cases), 40)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, Config{})
			res := b.do(t, "POST", "/v1/jobs", aliceToken, strings.NewReader(tc.body))
			require.Equal(t, tc.status, res.Status, "%s", res.Body)
			code, field, msg := res.err(t)
			require.Equal(t, tc.field, field, "message: %s", msg)
			require.NotEmpty(t, msg)
			require.NotEqual(t, "internal", code)
			require.Zero(t, b.store.stored(), "a refused submission stored a job")
		})
	}
}

func manyTags(n int) string {
	var parts []string
	for i := range n {
		parts = append(parts, fmt.Sprintf(`"k%d":"v"`, i))
	}
	return strings.Join(parts, ",")
}

// TestBadQueries covers refused query parameters and path values.
func TestBadQueries(t *testing.T) {
	t.Parallel()
	b := setup(t, Config{})
	for _, tc := range []struct {
		path  string
		field string
	}{
		{"/v1/jobs?state=sleeping", "state"},
		{"/v1/jobs?limit=0", "limit"},
		{"/v1/jobs?limit=5000", "limit"},
		{"/v1/jobs?limit=ten", "limit"},
		{"/v1/jobs?tag=novalue", "tag"},
		{"/v1/jobs?colour=red", "colour"},
		{"/v1/jobs?cursor=zzz", "cursor"},
		{"/v1/forecasts/uk?hours=-1", "hours"},
		{"/v1/forecasts/uk?hours=99999", "hours"},
		{"/v1/forecasts/uk?past=x", "past"},
		{"/v1/plan?explain=", "explain"},
		{"/v1/plan?verbose=1", "verbose"},
	} {
		res := b.do(t, "GET", tc.path, aliceToken, nil)
		require.Equal(t, http.StatusBadRequest, res.Status, tc.path)
		_, field, _ := res.err(t)
		require.Equal(t, tc.field, field, tc.path)
	}
}

// FuzzDecodeSubmit checks that no body makes decoding panic and that every
// refusal is a 4xx naming a field.
func FuzzDecodeSubmit(f *testing.F) {
	f.Add([]byte(okJob))
	f.Add([]byte(`{"jobs":[{"command":["a"],"deadline":"1h"}]}`))
	f.Add([]byte(`{"command":["a"],"deadline":"1h"} x`))
	f.Add([]byte("{\"name\":\"\xff\"}"))
	f.Fuzz(func(t *testing.T, b []byte) {
		var v submitBody
		if err := decodeBytes(b, &v); err != nil {
			e, ok := asError(err)
			require.True(t, ok, "%v", err)
			require.NotEmpty(t, e.Field)
		}
	})
}
