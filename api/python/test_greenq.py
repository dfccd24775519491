"""Unit tests of the greenq client against a test server.

The Go test TestPythonClient starts the server (fake store, three tenants)
and runs these with GREENQ_API_URL, GREENQ_TOKEN (tenant alice),
GREENQ_OTHER_TOKEN (tenant bob) and GREENQ_ADMIN_TOKEN set.
"""

import io
import json
import os
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


class DurationTest(unittest.TestCase):
    def test_durations(self) -> None:
        for given, want in [(90, 90), ("90s", 90), ("5m", 300), ("1h30m", 5400), ("2", 2), (None, None)]:
            self.assertEqual(greenq._duration_seconds(given), want)
        with self.assertRaises(ValueError):
            greenq._duration_seconds("soon")


if __name__ == "__main__":
    unittest.main()
