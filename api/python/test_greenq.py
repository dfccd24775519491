"""Unit tests of the greenq client against a test server.

The Go test TestPythonClient starts the server (fake store, three tenants)
and runs these with GREENQ_API_URL, GREENQ_TOKEN (tenant alice),
GREENQ_OTHER_TOKEN (tenant bob) and GREENQ_ADMIN_TOKEN set.
"""

import http.server
import io
import json
import os
import sys
import threading
import types
import unittest
import urllib.request
from contextlib import redirect_stderr

import greenq

URL = os.environ.get("GREENQ_API_URL")


@unittest.skipUnless(URL, "GREENQ_API_URL is not set: run through `go test ./api -run TestPythonClient`")
class ClientTest(unittest.TestCase):
    def setUp(self) -> None:
        self.c = greenq.Client()
        self.other = greenq.Client(token=os.environ["GREENQ_OTHER_TOKEN"])

    def test_submit_wait_receipt_logs(self) -> None:
        j = self.c.submit(["sh", "-c", "echo trained"], deadline="3m", duration="5s", name="py-train")
        self.assertEqual(j["state"], "pending")
        self.assertEqual(j["command"], ["sh", "-c", "echo trained"])
        self.assertEqual(j["duration_estimate_s"], 5)
        with redirect_stderr(io.StringIO()) as err:
            done = self.c.wait(j["id"], interval=0.01)
        self.assertEqual(done["state"], "succeeded")
        self.assertIn("succeeded", err.getvalue())
        self.assertGreater(done["receipt"]["energy_kwh"], 0)
        self.assertIn("trained", self.c.logs(j["id"]))

    def test_follow_logs_until_the_end(self) -> None:
        j = self.c.submit(["sh", "-c", "echo trained"], deadline="3m", duration="5s", name="py-follow")
        self.assertEqual("".join(self.c.follow_logs(j["id"], interval=0.01)), "trained\n")
        self.assertEqual(self.c.get(j["id"])["state"], "succeeded")
        with self.assertRaises(greenq.GreenqError) as e:
            self.c._request("GET", "/v1/jobs/" + j["id"] + "/logs", query={"offset": -1}, raw=True)
        self.assertEqual(e.exception.field, "offset")
        self.assertEqual(self.c.get(j["id"])["id"], j["id"])

    def test_job_carries_its_environment(self) -> None:
        j = self.c.submit(["python3", "train.py"], deadline="3h", env={"LR": "0.01"}, secrets={"WANDB_API_KEY": "wandb"},
                          workdir="/shared/me/proj", image="registry.example.org/me/train:1.2", grace="45s")
        got = self.c.get(j["id"])
        self.assertEqual(got["env"], {"LR": "0.01"})
        self.assertEqual(got["secrets"], {"WANDB_API_KEY": "wandb"})
        self.assertEqual((got["workdir"], got["image"], got["grace_s"]), ("/shared/me/proj", "registry.example.org/me/train:1.2", 45))
        for bad, field in ((dict(env={"GREENQ_REDIS_URL": "x"}), "env"), (dict(workdir="proj"), "workdir"),
                           (dict(secrets={"K": "../x"}), "secrets"), (dict(image="Not An Image"), "image")):
            with self.assertRaises(greenq.GreenqError) as cm:
                self.c.submit(["x"], deadline="1h", **bad)
            self.assertEqual((cm.exception.status, cm.exception.field), (400, field))

    def test_plan_region_after_submit(self) -> None:
        j = self.c.submit(["python", "x.py"], deadline="2h", regions=["uk"])
        self.c.get(j["id"])  # the fake store plans on first read
        entries = [e for e in self.c.plan()["jobs"] if e["id"] == j["id"]]
        self.assertEqual(len(entries), 1)
        self.assertEqual(entries[0]["region"], "uk")
        x = self.c.plan(explain=j["id"])
        self.assertEqual(x["chosen"]["region"], "uk")

    def test_sweep_returns_every_trial(self) -> None:
        jobs = self.c.submit(["python", "sweep.py"], deadline="6h", trials=3, tags={"exp": "sweep1"})
        self.assertEqual(len(jobs), 3)
        listed = self.c.list(tags={"exp": "sweep1"}, limit=2)  # two pages
        self.assertEqual(sorted(j["id"] for j in listed), sorted(j["id"] for j in jobs))

    def test_cancel(self) -> None:
        j = self.c.submit(["sleep", "1"], deadline="1h")
        self.assertEqual(self.c.cancel(j["id"])["state"], "cancelled")
        with self.assertRaises(greenq.GreenqError) as cm:
            self.c.cancel(j["id"])
        self.assertEqual(cm.exception.status, 409)

    def test_bad_input_names_field(self) -> None:
        with self.assertRaises(greenq.GreenqError) as cm:
            self.c.submit(["x"], deadline="-1h")
        self.assertEqual((cm.exception.status, cm.exception.code, cm.exception.field), (400, "invalid_argument", "deadline"))
        with self.assertRaises(greenq.GreenqError) as cm:
            self.c.submit(["x"], deadline="1h", gpus=-2)
        self.assertEqual(cm.exception.field, "gpus")

    def test_401_without_token(self) -> None:
        with self.assertRaises(greenq.GreenqError) as cm:
            greenq.Client(token="").list()
        self.assertEqual((cm.exception.status, cm.exception.code), (401, "unauthenticated"))

    def test_other_tenant_gets_404_and_no_trace(self) -> None:
        j = self.c.submit(["python", "secret.py"], deadline="5h", name="alice-secret")
        with self.assertRaises(greenq.GreenqError) as cm:
            self.other.get(j["id"])
        self.assertEqual(cm.exception.status, 404)
        with self.assertRaises(greenq.GreenqError):
            self.other.cancel(j["id"])
        self.assertNotIn(j["id"], [x["id"] for x in self.other.list()])
        self.assertNotIn(j["id"], json.dumps(self.other.plan()))
        admin = greenq.Client(token=os.environ["GREENQ_ADMIN_TOKEN"])
        self.assertEqual(admin.get(j["id"])["tenant"], "alice")

    def test_413_for_4mib_body(self) -> None:
        with self.assertRaises(greenq.GreenqError) as cm:
            self.c._request("POST", "/v1/jobs", b'{"name":"' + b"a" * (4 << 20) + b'"}')
        self.assertEqual((cm.exception.status, cm.exception.code), (413, "too_large"))

    def test_forecast_and_regions(self) -> None:
        names = [r["name"] for r in self.c.regions()]
        self.assertIn("uk", names)
        f = self.c.forecast("uk", hours=6)
        self.assertEqual(len(f["points"]), 6)
        self.assertEqual(f["signal"], "average")

    def test_openapi_and_metrics(self) -> None:
        with urllib.request.urlopen(URL + "/openapi.json") as r:
            doc = json.load(r)
        self.assertIn("/v1/jobs", doc["paths"])
        with urllib.request.urlopen(URL + "/metrics") as r:
            self.assertIn("greenq_api_requests_total", r.read().decode())

    def test_job_decorator(self) -> None:
        @greenq.job(deadline="4h", duration="10m", client=self.c)
        def train(epochs: str = "1") -> str:
            return "ran " + epochs

        self.assertEqual(train("2"), "ran 2")
        j = train.submit("--epochs", 3)
        self.assertEqual(j["name"], "train")
        self.assertEqual(j["command"][1:], [os.path.abspath(__file__), "--epochs", "3"])
        self.assertEqual(j["duration_estimate_s"], 600)

    def test_unreachable_server(self) -> None:
        with self.assertRaises(greenq.GreenqError) as cm:
            greenq.Client(url="http://127.0.0.1:1", timeout=2).regions()
        self.assertEqual(cm.exception.code, "unavailable")


    def test_string_command_is_refused_unless_split(self) -> None:
        with self.assertRaises(TypeError) as cm:
            self.c.submit("python train.py --epochs 3", deadline="1h")
        self.assertIn("['python', 'train.py', '--epochs', '3']", str(cm.exception), "the message shows the list to pass")
        self.assertIn("split=True", str(cm.exception))
        j = self.c.submit("python train.py --note 'two words'", deadline="1h", split=True)
        self.assertEqual(j["command"], ["python", "train.py", "--note", "two words"])
        with self.assertRaises(TypeError):
            self.c.submit_batch([{"command": "python train.py", "deadline": "1h"}])

    def test_accounting_and_price_fields(self) -> None:
        j = self.c.submit(["python", "infer.py"], deadline="2h", functional_unit="1000 images", max_price=2.5, power_w=250)
        got = self.c.get(j["id"])
        self.assertEqual((got["functional_unit"], got["max_price_usd_per_gpu_hour"], got["power_w"]), ("1000 images", 2.5, 250))
        with self.assertRaises(greenq.InvalidArgument) as cm:
            self.c.submit(["x"], deadline="1h", power_w=-1)
        self.assertEqual(cm.exception.field, "power_w")

    def test_home_region(self) -> None:
        j = self.c.submit(["python", "t.py"], deadline="2h", regions=["uk", "us-west"], home_region="us-west")
        self.assertEqual(self.c.get(j["id"])["home_region"], "us-west")
        j = self.c.submit(["python", "t.py"], deadline="2h", regions=["us-west", "uk"])
        self.assertEqual(self.c.get(j["id"])["home_region"], "us-west", "default: the first of regions")
        with self.assertRaises(greenq.InvalidArgument) as cm:
            self.c.submit(["x"], deadline="1h", regions=["uk"], home_region="us-west")
        self.assertEqual(cm.exception.field, "home_region")

    def test_typed_errors(self) -> None:
        with self.assertRaises(greenq.InvalidArgument) as cm:
            self.c.submit(["x"], deadline="-1h")
        self.assertIsInstance(cm.exception, greenq.GreenqError)
        self.assertIsInstance(cm.exception, ValueError)
        self.assertEqual((cm.exception.status, cm.exception.code, cm.exception.field), (400, "invalid_argument", "deadline"))
        with self.assertRaises(greenq.NotFound) as nf:
            self.c.get("no-such-job")
        self.assertEqual((nf.exception.status, nf.exception.code), (404, "not_found"))
        j = self.c.submit(["sleep", "1"], deadline="1h")
        self.c.cancel(j["id"])
        with self.assertRaises(greenq.Conflict):
            self.c.cancel(j["id"])
        with self.assertRaises(greenq.Unauthenticated):
            greenq.Client(token="").list()
        with self.assertRaises(greenq.Unavailable):
            greenq.Client(url="http://127.0.0.1:1", timeout=2).regions()

    def test_batch_is_all_or_none(self) -> None:
        jobs = self.c.submit_batch([{"name": f"b{i}", "command": ["python", "t.py", str(i)], "deadline": "3h"} for i in range(3)])
        self.assertEqual([j["name"] for j in jobs], ["b0", "b1", "b2"])
        before = len(self.c.list())
        with self.assertRaises(greenq.InvalidArgument) as cm:
            self.c.submit_batch([{"command": ["a"], "deadline": "1h"}, {"command": ["b"], "deadline": "-1h"}])
        self.assertEqual(cm.exception.field, "jobs[1].deadline")
        self.assertEqual(len(self.c.list()), before, "nothing stored")


# A finished job as GET /v1/jobs/{id} returns it.
FINISHED = {"id": "01job", "state": "succeeded", "home_region": "us-west", "run": {"region": "ca-central"},
            "receipt": {"gco2": 6.0, "baseline_gco2": 15.0, "saved_gco2": 9.0, "saved_by_waiting_gco2": 0.1,
                        "saved_by_moving_gco2": 8.9, "energy_kwh": 0.05, "pue": 1.2, "intensity_gco2_per_kwh": 100.0,
                        "gpu_hours": 0.5, "cost_usd": 0.56, "energy_source": "nvml",
                        "intensity_source": "file:actual", "signal": "average", "restated_at": "2026-03-02T00:00:00Z"}}


class _Recorder:
    """Records every call made on it and on its attributes, as a tracker module would receive them."""

    def __init__(self, calls: list, name: str) -> None:
        self._calls, self._name = calls, name

    def __getattr__(self, attr: str) -> "_Recorder":
        return _Recorder(self._calls, f"{self._name}.{attr}")

    def __call__(self, *args, **kwargs):
        self._calls.append((self._name, args, kwargs))
        return None


def _stand_in(name: str, calls: list, active: bool) -> types.ModuleType:
    """A stand-in for mlflow or wandb: its functions record their calls."""
    m = types.ModuleType(name)
    if name == "mlflow":
        m.active_run = lambda: types.SimpleNamespace(info=types.SimpleNamespace(run_id="run-1")) if active else None
        m.log_metrics = _Recorder(calls, "mlflow.log_metrics")
        m.set_tags = _Recorder(calls, "mlflow.set_tags")
        m.MlflowClient = lambda: _Recorder(calls, "mlflow.MlflowClient()")
    else:
        m.run = _Recorder(calls, "wandb.run") if active else None
    return m


class TrackerTest(unittest.TestCase):
    """attach_receipt with stand-ins for mlflow and wandb, which record the calls."""

    def setUp(self) -> None:
        self.saved = {n: sys.modules.get(n, "absent") for n in ("mlflow", "wandb")}
        self.calls: list = []
        self.c = greenq.Client(url="http://127.0.0.1:1", token="t")

    def tearDown(self) -> None:
        for n, m in self.saved.items():
            if m == "absent":
                sys.modules.pop(n, None)
            else:
                sys.modules[n] = m

    def use(self, mlflow=None, wandb=None) -> None:
        sys.modules["mlflow"] = _stand_in("mlflow", self.calls, mlflow) if mlflow is not None else None
        sys.modules["wandb"] = _stand_in("wandb", self.calls, wandb) if wandb is not None else None

    def test_mlflow_active_run(self) -> None:
        self.use(mlflow=True)
        got = self.c.attach_receipt(FINISHED)
        self.assertEqual(got["greenq/gco2"], 6.0)
        self.assertAlmostEqual(got["greenq/saved_by_waiting_gco2"] + got["greenq/saved_by_moving_gco2"], got["greenq/saved_gco2"])
        self.assertEqual(got["greenq/cost_usd"], 0.56)
        (n1, a1, _), (n2, a2, _) = self.calls
        self.assertEqual((n1, a1[0]), ("mlflow.log_metrics", got))
        self.assertEqual(n2, "mlflow.set_tags")
        self.assertEqual(a2[0]["greenq.job_id"], "01job")
        self.assertEqual(a2[0]["greenq.region"], "ca-central")
        self.assertEqual(a2[0]["greenq.home_region"], "us-west")
        self.assertEqual(a2[0]["greenq.restated"], "true")

    def test_mlflow_run_by_id(self) -> None:
        self.use(mlflow=False)
        self.c.attach_receipt(FINISHED, tracker="mlflow", run="run-9")
        logged = [(a[0], a[1]) for n, a, _ in self.calls if n == "mlflow.MlflowClient().log_metric"]
        self.assertIn(("run-9", "greenq/gco2"), logged)
        self.assertIn(("mlflow.MlflowClient().set_tag", ("run-9", "greenq.job_id", "01job")), [(n, a) for n, a, _ in self.calls])

    def test_wandb_when_mlflow_has_no_run(self) -> None:
        self.use(mlflow=False, wandb=True)
        got = self.c.attach_receipt(FINISHED)
        names = [n for n, _, _ in self.calls]
        self.assertEqual(names, ["wandb.run.log", "wandb.run.summary.update", "wandb.run.config.update"])
        self.assertEqual(self.calls[0][1][0], got)
        self.assertEqual(self.calls[2][1][0]["greenq.intensity_source"], "file:actual")
        self.assertEqual(self.calls[2][2], {"allow_val_change": True})

    def test_nothing_installed_or_no_receipt(self) -> None:
        self.use()
        with self.assertRaises(RuntimeError):
            self.c.attach_receipt(FINISHED)
        with self.assertRaises(RuntimeError) as cm:
            self.c.attach_receipt(FINISHED, tracker="wandb")
        self.assertIn("not installed", str(cm.exception))
        self.use(mlflow=True)
        with self.assertRaises(ValueError):
            self.c.attach_receipt({"id": "01run", "state": "running"})
        self.assertEqual(self.calls, [], "nothing logged for a job without a receipt")


class _Answers(http.server.BaseHTTPRequestHandler):
    """Answers each request with the next of the server's (status, headers, body)."""

    def do_GET(self) -> None:
        self._answer()

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self._answer()

    def _answer(self) -> None:
        status, headers, body = self.server.answers.pop(0) if self.server.answers else self.server.last  # type: ignore[attr-defined]
        self.server.hits += 1  # type: ignore[attr-defined]
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        data = json.dumps(body).encode()
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args) -> None:  # quiet
        pass


class RetryTest(unittest.TestCase):
    """429 Too Many Requests is waited out as Retry-After asks, a bounded number of times."""

    def serve(self, answers, last=None):
        srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Answers)
        srv.answers, srv.last, srv.hits = list(answers), last, 0  # type: ignore[attr-defined]
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        self.addCleanup(srv.server_close)
        self.addCleanup(srv.shutdown)
        c = greenq.Client(url=f"http://127.0.0.1:{srv.server_address[1]}", token="t")
        slept = []
        c._sleep = slept.append
        return srv, c, slept

    limited = (429, {"Retry-After": "1"}, {"error": {"code": "rate_limited", "message": "too many requests: retry after 1 s"}})

    def test_retries_then_succeeds(self) -> None:
        srv, c, slept = self.serve([self.limited, self.limited, (201, {}, {"id": "j-1", "state": "pending"})])
        with redirect_stderr(io.StringIO()) as err:
            j = c.submit(["true"], deadline="1h")
        self.assertEqual(j["id"], "j-1")
        self.assertEqual(slept, [1.0, 1.0])
        self.assertEqual(err.getvalue().count("rate limiting"), 2)
        self.assertIn("retrying in 1 s (1 of 5)", err.getvalue())

    def test_gives_up_after_the_bound(self) -> None:
        srv, c, slept = self.serve([], last=self.limited)
        with redirect_stderr(io.StringIO()), self.assertRaises(greenq.RateLimited) as cm:
            c.regions()
        self.assertEqual(len(slept), 5)
        self.assertEqual(srv.hits, 6)
        self.assertEqual((cm.exception.status, cm.exception.retry_after), (429, 1.0))

    def test_long_retry_after_is_not_waited_for(self) -> None:
        srv, c, slept = self.serve([], last=(429, {"Retry-After": "600"}, {"error": {"code": "rate_limited", "message": "slow down"}}))
        with self.assertRaises(greenq.RateLimited):
            c.regions()
        self.assertEqual(slept, [])


class _Handle:
    def __init__(self) -> None:
        self.updates = []

    def update(self, data, raw=False) -> None:
        self.updates.append(data)


class _Steps(greenq.Client):
    """A client whose get() returns the given job states in turn."""

    def __init__(self, jobs) -> None:
        super().__init__(url="http://127.0.0.1:1")
        self.jobs = list(jobs)

    def get(self, id):
        return self.jobs.pop(0) if len(self.jobs) > 1 else self.jobs[0]


class ProgressTest(unittest.TestCase):
    jobs = [
        {"id": "j-1", "name": "train", "state": "planned", "duration_estimate_s": 60,
         "plan": {"region": "uk", "start": "2020-01-01T00:00:00Z", "expected_gco2": 12.5, "reason": "run now in uk",
                  "baseline": {"expected_gco2": 20}}},
        {"id": "j-1", "name": "train", "state": "running", "duration_estimate_s": 60,
         "run": {"region": "uk", "started_at": "2020-01-01T00:00:00.123456789Z"}},
        {"id": "j-1", "name": "train", "state": "succeeded",
         "receipt": {"gco2": 0.08, "saved_gco2": 0.04, "energy_kwh": 0.0004, "energy_source": "estimate"}},
    ]

    def test_jupyter_display_updates_in_place(self) -> None:
        handle = _Handle()
        shown = []
        ipython = types.ModuleType("IPython")
        ipython.get_ipython = lambda: types.SimpleNamespace(config={"IPKernelApp": {}})
        display_mod = types.ModuleType("IPython.display")

        def display(data, raw=False, display_id=False):
            shown.append(data)
            return handle

        display_mod.display = display
        ipython.display = display_mod
        saved = {k: sys.modules.get(k) for k in ("IPython", "IPython.display")}
        sys.modules.update({"IPython": ipython, "IPython.display": display_mod})
        try:
            with redirect_stderr(io.StringIO()) as err:
                done = _Steps(self.jobs).wait("j-1", interval=0)
        finally:
            for k, v in saved.items():
                if v is None:
                    sys.modules.pop(k, None)
                else:
                    sys.modules[k] = v
        self.assertEqual(done["state"], "succeeded")
        self.assertEqual(len(shown), 1, "one display, updated in place")
        self.assertEqual(err.getvalue(), "", "nothing on stderr in a notebook")
        html = [u["text/html"] for u in handle.updates]
        self.assertIn("window open", html[0])
        self.assertIn("<progress", html[1], "a bar while it runs")
        self.assertIn("saved against running at once", html[-1])
        self.assertIn("succeeded", handle.updates[-1]["text/plain"])

    def test_plain_text_without_jupyter(self) -> None:
        with redirect_stderr(io.StringIO()) as err:
            _Steps(self.jobs).wait("j-1", interval=0)
        lines = err.getvalue().splitlines()
        self.assertEqual(len(lines), 3, "one line per state")
        self.assertTrue(lines[-1].startswith("train: succeeded"))


class DurationTest(unittest.TestCase):
    def test_durations(self) -> None:
        for given, want in [(90, 90), ("90s", 90), ("5m", 300), ("1h30m", 5400), ("2", 2), (None, None)]:
            self.assertEqual(greenq._duration_seconds(given), want)
        with self.assertRaises(ValueError):
            greenq._duration_seconds("soon")


if __name__ == "__main__":
    unittest.main()
