"""greenq client: submit and follow carbon-aware ML jobs from Python.

Standard library only; one file you can copy next to a notebook.

    >>> import greenq
    >>> c = greenq.Client()                      # GREENQ_API_URL, GREENQ_TOKEN
    >>> job = c.submit(["python", "train.py"], deadline="24h", duration="3h")
    >>> c.wait(job["id"])                        # live progress
    >>> c.get(job["id"])["receipt"]["saved_gco2"]

Errors from the API raise GreenqError (a subclass per code: InvalidArgument,
NotFound, Conflict, RateLimited, …) with its status, code, message and the
offending field. Answers of 429 Too Many Requests are waited out and retried
(a bounded number of times, as long as the server's Retry-After asks, with a
note on stderr).

Install it with ``pip install ./api/python`` from a greenq checkout, or copy
this one file next to a notebook: it needs nothing beyond the standard
library.
"""

from __future__ import annotations

import codecs
import functools
import inspect
import json
import os
import shlex
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Sequence, Union

__all__ = ["Client", "GreenqError", "InvalidArgument", "Unauthenticated", "Forbidden", "NotFound", "Conflict",
           "TooLarge", "RateLimited", "Unavailable", "job", "receipt_metrics", "FINAL_STATES", "DEFAULT_URL"]

__version__ = "1.0.0"

DEFAULT_URL = "http://127.0.0.1:8080"
FINAL_STATES = frozenset({"succeeded", "failed", "cancelled", "expired"})

Job = Dict[str, Any]


class GreenqError(Exception):
    """An error answered by the greenq API (or a transport failure).

    Attributes:
        status: HTTP status (0 when the server could not be reached).
        code: the API's error code, e.g. "invalid_argument", "not_found".
        message: the API's message for people.
        field: the offending request field, for bad input; else None.
    """

    def __init__(self, status: int, code: str, message: str, field: Optional[str] = None) -> None:
        self.status, self.code, self.message, self.field = status, code, message, field
        where = f"{field}: " if field else ""
        super().__init__(f"{where}{message} ({code}, HTTP {status})" if status else f"{where}{message}")

    @staticmethod
    def of(status: int, code: str, message: str, field: Optional[str] = None) -> "GreenqError":
        """Returns the error of the subclass for code (GreenqError for an unknown one)."""
        return _ERRORS.get(code, GreenqError)(status, code, message, field)


class InvalidArgument(GreenqError, ValueError):
    """400: the request was refused; ``field`` names what was wrong (jobs[3].deadline in a batch)."""


class Unauthenticated(GreenqError):
    """401: no token, or not a valid one (set GREENQ_TOKEN)."""


class Forbidden(GreenqError):
    """403: the token may not do this, or the request came from a refused origin."""


class NotFound(GreenqError, LookupError):
    """404: no such job or region (or another tenant's)."""


class Conflict(GreenqError):
    """409: the job's state does not allow it (cancelling a finished job), or an idempotency key was reused."""


class TooLarge(GreenqError):
    """413: the request body is over the server's limit."""


class RateLimited(GreenqError):
    """429 after the client's retries ran out; ``retry_after`` is the server's last Retry-After in seconds."""

    retry_after: Optional[float] = None


class Unavailable(GreenqError, ConnectionError):
    """503, or the server could not be reached (status 0)."""


_ERRORS = {"invalid_argument": InvalidArgument, "unauthenticated": Unauthenticated, "forbidden": Forbidden,
           "not_found": NotFound, "conflict": Conflict, "too_large": TooLarge, "unsupported_media_type": InvalidArgument,
           "method_not_allowed": InvalidArgument, "rate_limited": RateLimited, "unavailable": Unavailable}


def _duration_seconds(d: Union[None, int, float, str]) -> Optional[int]:
    """Reads 90, 90.0, "90s", "5m", "3h" or "1h30m" as whole seconds."""
    if d is None:
        return None
    if isinstance(d, (int, float)):
        return int(d)
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    total, num = 0.0, ""
    for ch in d.strip():
        if ch.isdigit() or ch == ".":
            num += ch
        elif ch in units and num:
            total += float(num) * units[ch]
            num = ""
        else:
            raise ValueError(f"duration {d!r} is not like 90s, 5m or 3h")
    if num:
        total += float(num)
    return int(total)


def _retry_after(value: Optional[str], attempt: int) -> float:
    """Seconds a 429's Retry-After asks for (seconds or an HTTP date); without one 1, 2, 4… s."""
    if value:
        value = value.strip()
        try:
            return max(0.0, float(int(value)))
        except ValueError:
            try:
                from email.utils import parsedate_to_datetime

                return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
            except (TypeError, ValueError):
                pass
    return float(2 ** attempt)


class Client:
    """A greenq API client.

    Args:
        url: the API's base URL; default $GREENQ_API_URL or http://127.0.0.1:8080.
        token: bearer token; default $GREENQ_TOKEN (none for a local dev server).
        timeout: seconds per HTTP request.
        retries: how many times a 429 Too Many Requests is waited out and
            retried (a refused request did nothing, so this is safe for
            submits too); 0 raises RateLimited at once.
        max_retry_wait: the longest Retry-After waited for, in seconds; a
            server asking for longer raises RateLimited at once.
    """

    def __init__(self, url: Optional[str] = None, token: Optional[str] = None, timeout: float = 30.0,
                 retries: int = 5, max_retry_wait: float = 30.0) -> None:
        self.url = (url or os.environ.get("GREENQ_API_URL") or DEFAULT_URL).rstrip("/")
        self.token = token if token is not None else os.environ.get("GREENQ_TOKEN")
        self.timeout = timeout
        self.retries, self.max_retry_wait = retries, max_retry_wait
        self._sleep: Callable[[float], None] = time.sleep

    # -- transport ---------------------------------------------------------

    def _request(self, method: str, path: str, body: Any = None, query: Optional[Mapping[str, Any]] = None,
                 raw: bool = False, headers_out: Optional[Dict[str, str]] = None) -> Any:
        url = self.url + path
        if query:
            pairs = []
            for k, v in query.items():
                if v is None:
                    continue
                for item in v if isinstance(v, (list, tuple)) else [v]:
                    pairs.append((k, str(item)))
            if pairs:
                url += "?" + urllib.parse.urlencode(pairs)
        data = None
        headers = {"Accept": "application/json", "User-Agent": "greenq-python/1"}
        if body is not None:
            data = body if isinstance(body, bytes) else json.dumps(body).encode("utf-8")
            headers["Content-Type"] = "application/json"
        if self.token:
            headers["Authorization"] = "Bearer " + self.token
        attempt = 0
        while True:
            req = urllib.request.Request(url, data=data, method=method, headers=headers)
            try:
                with urllib.request.urlopen(req, timeout=self.timeout) as res:
                    payload = res.read()
                    if headers_out is not None:
                        headers_out.update(res.headers.items())
                break
            except urllib.error.HTTPError as e:
                err = self._error(e.code, e.read())
                wait = _retry_after(e.headers.get("Retry-After"), attempt)
                if e.code != 429 or attempt >= self.retries or wait > self.max_retry_wait:
                    if isinstance(err, RateLimited):
                        err.retry_after = wait
                    raise err from None
                attempt += 1
                print(f"greenq: the API is rate limiting this token; retrying in {wait:g} s ({attempt} of {self.retries})",
                      file=sys.stderr)
                self._sleep(wait)
            except urllib.error.URLError as e:
                raise Unavailable(0, "unavailable", f"cannot reach greenq at {self.url}: {e.reason}") from None
        if raw:
            return payload
        return json.loads(payload) if payload else None

    @staticmethod
    def _error(status: int, payload: bytes) -> GreenqError:
        try:
            err = json.loads(payload)["error"]
            return GreenqError.of(status, err.get("code", "unknown"), err.get("message", ""), err.get("field"))
        except (ValueError, KeyError, TypeError, AttributeError):
            return GreenqError(status, "unknown", payload.decode("utf-8", "replace")[:500] or f"HTTP {status}")

    # -- jobs --------------------------------------------------------------

    def submit(self, command: Union[str, Sequence[str]], deadline: str, duration: Union[None, int, str] = None,
               gpus: int = 1, regions: Optional[Sequence[str]] = None, name: Optional[str] = None,
               kind: Optional[str] = None, interruptible: bool = False, trials: Optional[int] = None,
               tags: Optional[Mapping[str, str]] = None, key: Optional[str] = None,
               env: Optional[Mapping[str, str]] = None, secrets: Optional[Mapping[str, str]] = None,
               workdir: Optional[str] = None, image: Optional[str] = None,
               grace: Union[None, int, str] = None, functional_unit: Optional[str] = None,
               max_price: Optional[float] = None, power_w: Optional[float] = None,
               split: bool = False, home_region: Optional[str] = None) -> Union[Job, List[Job]]:
        """Submits a job and returns it (a list of jobs when trials > 1).

        Args:
            command: the program and its arguments as a list (argv; never run
                by a shell), e.g. ["python", "train.py", "--epochs", "3"]. A
                string is refused (TypeError), since "python train.py" would be
                one program of that name; pass split=True to have it split as
                a shell would (shlex.split), or ["sh", "-c", "..."] for a shell.
            deadline: a Go duration from now ("24h", "90m") or an RFC 3339 time.
            duration: expected run time, seconds or "3h"/"45m".
            gpus: GPUs per job.
            regions: allowed regions; default all.
            name, kind ("train"|"sweep"|"infer"), interruptible, trials, tags:
                as in the API.
            key: idempotency key: resubmitting the same body with the same key
                returns the same job; another body with it is refused (409).
            env: variables for the job.
            secrets: variable name -> secret name, resolved on the worker from
                its own secret store (the value never leaves the worker).
            workdir: where the command starts, a path on the region's shared
                storage (default a fresh directory).
            image: an OCI image to run the command in.
            grace: time between SIGTERM and SIGKILL when greenq stops the job,
                seconds or "30s"/"5m".
            functional_unit: what one run produces, for the receipt's SCI
                (e.g. "1000 images").
            max_price: a hard cap, USD per GPU-hour: the job never runs in a
                region-hour dearer than this (refused when no allowed region
                is ever that cheap; expires when no such window comes before
                the deadline).
            power_w: expected draw per GPU in watts, for planning.
            split: split a string command with shlex.split.
            home_region: where running at once would run, the baseline its
                savings are counted against; one of regions (default the
                first of them, else the server's first region).

        Raises:
            TypeError: command is a string and split is not set.
            InvalidArgument: the API refused a field (``field`` names it).
        """
        argv = _argv(command, split)
        body: Dict[str, Any] = {"command": argv, "deadline": deadline, "gpus": gpus}
        optional = {"duration_estimate_s": _duration_seconds(duration), "regions": list(regions) if regions else None,
                    "name": name, "kind": kind, "trials": trials, "tags": dict(tags) if tags else None, "key": key,
                    "env": dict(env) if env else None, "secrets": dict(secrets) if secrets else None,
                    "workdir": workdir, "image": image, "grace_s": _duration_seconds(grace),
                    "functional_unit": functional_unit, "max_price_usd_per_gpu_hour": max_price, "power_w": power_w,
                    "home_region": home_region}
        body.update({k: v for k, v in optional.items() if v is not None})
        if interruptible:
            body["interruptible"] = True
        out = self._request("POST", "/v1/jobs", body)
        return out["jobs"] if "jobs" in out and "id" not in out else out

    def submit_batch(self, jobs: Sequence[Mapping[str, Any]]) -> List[Job]:
        """Submits up to 1000 jobs (API field names) at once, all or none (POST /v1/jobs:batch).

        Returns the created jobs in order. A refused job raises InvalidArgument
        whose field names it (jobs[3].deadline) and nothing is stored.
        """
        for i, j in enumerate(jobs):
            if isinstance(j.get("command"), str):
                raise TypeError(f"jobs[{i}].command: give a list (argv), not the string {j['command']!r}")
        return self._request("POST", "/v1/jobs:batch", {"jobs": [dict(j) for j in jobs]})["jobs"]

    def get(self, id: str) -> Job:
        """Returns one job."""
        return self._request("GET", "/v1/jobs/" + urllib.parse.quote(id, safe=""))

    def list(self, state: Optional[str] = None, tags: Optional[Mapping[str, str]] = None, region: Optional[str] = None,
             group: Optional[str] = None, limit: Optional[int] = None) -> List[Job]:
        """Returns every job matching the filters, following pages."""
        return list(self.iter_jobs(state=state, tags=tags, region=region, group=group, limit=limit))

    def iter_jobs(self, state: Optional[str] = None, tags: Optional[Mapping[str, str]] = None,
                  region: Optional[str] = None, group: Optional[str] = None, limit: Optional[int] = None) -> Iterator[Job]:
        """Yields matching jobs newest first, fetching pages of `limit` (default 100) as needed."""
        query: Dict[str, Any] = {"state": state, "region": region, "group": group, "limit": limit,
                                 "tag": [f"{k}={v}" for k, v in (tags or {}).items()] or None}
        while True:
            page = self._request("GET", "/v1/jobs", query=query)
            yield from page["jobs"]
            if not page.get("next_cursor"):
                return
            query["cursor"] = page["next_cursor"]

    def cancel(self, id: str) -> Job:
        """Cancels a job in any non-final state and returns it."""
        return self._request("POST", "/v1/jobs/" + urllib.parse.quote(id, safe="") + "/cancel")

    def logs(self, id: str) -> str:
        """Returns the job's output: all of it up to the server's bound (1 MiB by
        default), else its first and latest halves with a line "… N bytes cut …"
        between them."""
        return self._request("GET", "/v1/jobs/" + urllib.parse.quote(id, safe="") + "/logs", raw=True).decode("utf-8", "replace")

    def follow_logs(self, id: str, interval: float = 1.0) -> Iterator[str]:
        """Yields the job's output as it is written until the job ends.

        Polls GET /v1/jobs/{id}/logs?offset=N every interval seconds; output
        cut before it was read comes as a line "… N bytes cut …".
        """
        path = "/v1/jobs/" + urllib.parse.quote(id, safe="") + "/logs"
        decoder = codecs.getincrementaldecoder("utf-8")("replace")
        offset, last = 0, "\n"
        while True:
            headers: Dict[str, str] = {}
            data = self._request("GET", path, query={"offset": offset}, raw=True, headers_out=headers)
            h = {k.lower(): v for k, v in headers.items()}
            text = decoder.decode(data)
            if int(h.get("x-greenq-log-skipped", "0")) > 0 and text.startswith("… ") and last != "\n":
                text = "\n" + text  # the marker gets a line of its own
            if text:
                last = text[-1]
                yield text
            final = h.get("x-greenq-job-final") == "true"
            new = int(h.get("x-greenq-log-offset", offset))
            if final:
                rest = decoder.decode(b"", final=True)
                if rest:
                    yield rest
                return
            offset = new
            time.sleep(interval)

    def wait(self, id: str, progress: bool = True, interval: float = 2.0, timeout: Optional[float] = None) -> Job:
        """Polls a job until it reaches a final state and returns it.

        With progress, shows a live-updating line: an in-place display in
        Jupyter (IPython.display), a carriage-return line in a terminal,
        one line per state change otherwise.

        Raises:
            TimeoutError: when timeout seconds pass first.
        """
        display = _Progress(id) if progress else None
        start = time.monotonic()
        try:
            while True:
                j = self.get(id)
                if display:
                    display.update(j, time.monotonic() - start)
                if j.get("state") in FINAL_STATES:
                    return j
                if timeout is not None and time.monotonic() - start > timeout:
                    raise TimeoutError(f"job {id} is still {j.get('state')} after {timeout:.0f} s")
                time.sleep(interval)
        finally:
            if display:
                display.close()

    # -- plan, forecasts, regions ---------------------------------------------

    def plan(self, explain: Optional[str] = None) -> Dict[str, Any]:
        """Returns the plan of every pending job, or with explain=ID the options weighed for one job."""
        return self._request("GET", "/v1/plan", query={"explain": explain})

    def forecast(self, region: str, hours: Optional[int] = None, past: Optional[int] = None) -> Dict[str, Any]:
        """Returns a region's carbon series: {"region", "zone", "signal", "points": [...]}.

        hours limits it to the next hours; past adds that many hours of history.
        """
        return self._request("GET", "/v1/forecasts/" + urllib.parse.quote(region, safe=""),
                             query={"hours": hours, "past": past})

    def regions(self) -> List[Dict[str, Any]]:
        """Returns the configured regions with PUE, price and live capacity."""
        return self._request("GET", "/v1/regions")["regions"]

    def summary(self) -> Dict[str, Any]:
        """Returns totals over your jobs: counts by state, gCO2e emitted and saved, kWh."""
        return self._request("GET", "/v1/summary")

    # -- experiment trackers --------------------------------------------------

    def attach_receipt(self, job: Union[str, Job], tracker: Optional[str] = None, run: Any = None,
                       prefix: str = "greenq") -> Dict[str, float]:
        """Attaches a finished job's carbon receipt to an experiment tracker run.

        The receipt's figures become metrics (``greenq/gco2``,
        ``greenq/saved_gco2``, ``greenq/saved_by_waiting_gco2``,
        ``greenq/saved_by_moving_gco2``, ``greenq/energy_kwh``,
        ``greenq/cost_usd``, …) and its provenance tags (``greenq.job_id``,
        ``greenq.region``, ``greenq.home_region``, ``greenq.intensity_source``,
        ``greenq.restated``, …), so the run that launched the job shows what
        it emitted next to its loss curves.

        Args:
            job: the job, or its id (read with get()).
            tracker: "mlflow" or "wandb"; default whichever is installed and
                has an active run (``mlflow.active_run()``, ``wandb.run``),
                MLflow first. Neither is imported unless installed.
            run: the run to use instead of the active one: an MLflow run id,
                or a W&B Run.
            prefix: the metric and tag prefix.

        Returns the metrics logged.

        Raises:
            ValueError: the job has no receipt yet (it has not finished).
            RuntimeError: no tracker is installed, or none has a run.
        """
        j = self.get(job) if isinstance(job, str) else job
        metrics, tags = receipt_metrics(j, prefix)
        for name in ([tracker] if tracker else ["mlflow", "wandb"]):
            mod = _optional_module(name)
            if mod is None:
                if tracker:
                    raise RuntimeError(f"{tracker} is not installed")
                continue
            if name == "mlflow":
                active = run if run is not None else (mod.active_run() and mod.active_run().info.run_id)
                if not active:
                    if tracker:
                        raise RuntimeError("mlflow has no active run: start one (mlflow.start_run()) or pass run=RUN_ID")
                    continue
                if run is None:
                    mod.log_metrics(metrics)
                    mod.set_tags(tags)
                else:
                    client = mod.MlflowClient()
                    for k, v in metrics.items():
                        client.log_metric(run, k, v)
                    for k, v in tags.items():
                        client.set_tag(run, k, v)
                return metrics
            target = run if run is not None else mod.run
            if target is None:
                if tracker:
                    raise RuntimeError("wandb has no active run: call wandb.init() or pass run=RUN")
                continue
            target.log(metrics)
            target.summary.update(metrics)
            target.config.update(tags, allow_val_change=True)
            return metrics
        raise RuntimeError("no experiment tracker run to attach to: install mlflow or wandb and start a run")


def receipt_metrics(j: Job, prefix: str = "greenq") -> "tuple[Dict[str, float], Dict[str, str]]":
    """Returns a finished job's receipt as tracker metrics and tags (see Client.attach_receipt).

    Raises ValueError when the job has no receipt yet.
    """
    r = j.get("receipt")
    if not r:
        raise ValueError(f"job {j.get('id')} has no carbon receipt yet (state {j.get('state')}): wait for it to finish")
    names = ["gco2", "baseline_gco2", "saved_gco2", "saved_by_waiting_gco2", "saved_by_moving_gco2", "energy_kwh",
             "pue", "intensity_gco2_per_kwh", "embodied_gco2", "sci", "gpu_hours", "cost_usd", "duration_s"]
    metrics = {f"{prefix}/{n}": float(r[n]) for n in names if isinstance(r.get(n), (int, float))}
    run = j.get("run") or {}
    tags = {f"{prefix}.job_id": j.get("id", ""), f"{prefix}.region": run.get("region", ""),
            f"{prefix}.home_region": j.get("home_region") or r.get("baseline_region", ""),
            f"{prefix}.energy_source": r.get("energy_source", ""), f"{prefix}.intensity_source": r.get("intensity_source", ""),
            f"{prefix}.signal": r.get("signal", ""), f"{prefix}.restated": "true" if r.get("restated_at") else "false"}
    return metrics, {k: str(v) for k, v in tags.items() if v != ""}


def _optional_module(name: str) -> Any:
    """Imports name when it is installed (a stand-in in sys.modules counts), else returns None."""
    if name in sys.modules:
        return sys.modules[name]  # None when blocked on purpose
    import importlib
    import importlib.util
    if importlib.util.find_spec(name) is None:
        return None
    return importlib.import_module(name)


def _argv(command: Union[str, Sequence[str]], split: bool) -> List[str]:
    if isinstance(command, str):
        if not split:
            raise TypeError(f"command must be a list (argv), e.g. {shlex.split(command)!r}, not the string {command!r}, "
                            "which would run as one program of that name; pass split=True to split it as a shell would")
        return shlex.split(command)
    argv = list(command)
    if not all(isinstance(a, str) for a in argv):
        raise TypeError(f"command must be a list of strings, got {argv!r}")
    return argv


def describe(j: Job) -> str:
    """One line about a job: state, where and when it runs, what it saves."""
    parts = [f"{j.get('name') or j['id']}: {j.get('state')}"]
    plan, run, receipt = j.get("plan"), j.get("run"), j.get("receipt")
    if receipt:
        parts.append(f"{receipt['gco2']:.2f} gCO2e, saved {receipt['saved_gco2']:.2f} ({receipt['energy_kwh']:.4f} kWh)")
    elif run:
        parts.append(f"in {run['region']} since {run['started_at']}")
    elif plan:
        parts.append(f"{plan['region']} at {plan['start']} ({plan.get('reason', '')})")
    return " · ".join(parts)


class _Progress:
    """Shows a job's progress in Jupyter (a display updated in place, with a
    progress bar while it runs), a terminal (one line redrawn), or a plain
    log (one line per state change)."""

    def __init__(self, id: str) -> None:
        self.id, self.last, self.handle, self.tty = id, None, None, False
        try:
            from IPython import get_ipython  # type: ignore
            from IPython.display import display  # type: ignore

            if get_ipython() is not None and "IPKernelApp" in get_ipython().config:
                self.handle = display({"text/plain": f"{id}: waiting", "text/html": f"<code>{_html(id)}</code>: waiting"},
                                      raw=True, display_id=True)
        except Exception:  # IPython absent or not a kernel: fall back to text
            self.handle = None
        if self.handle is None:
            self.tty = sys.stderr.isatty()

    def update(self, j: Job, elapsed: float) -> None:
        line = f"{describe(j)} [{_dur(elapsed)}]"
        if self.handle is not None:
            self.handle.update({"text/plain": line, "text/html": _progress_html(j, elapsed)}, raw=True)
        elif self.tty:
            sys.stderr.write("\r\x1b[K" + line)
            sys.stderr.flush()
        elif j.get("state") != self.last:
            print(line, file=sys.stderr)
        self.last = j.get("state")

    def close(self) -> None:
        if self.handle is None and self.tty:
            sys.stderr.write("\n")


_STATE_COLOURS = {"pending": "#888", "planned": "#3b7dd8", "released": "#3b7dd8", "running": "#e08a1e",
                  "succeeded": "#2e8b57", "failed": "#c0392b", "cancelled": "#888", "expired": "#c0392b"}


def _progress_html(j: Job, elapsed: float) -> str:
    """The Jupyter view of a job: its state, where and when, a bar while it runs, the receipt once done."""
    state = j.get("state", "")
    badge = (f'<span style="background:{_STATE_COLOURS.get(state, "#888")};color:#fff;border-radius:3px;'
             f'padding:0 .4em">{_html(state)}</span>')
    rows = [f"<b>{_html(j.get('name') or j['id'])}</b> {badge} <small>{_html(j['id'])} · waited {_dur(elapsed)}</small>"]
    plan, run, receipt = j.get("plan"), j.get("run"), j.get("receipt")
    if state == "running" and run:
        est = j.get("duration_estimate_s") or 0
        ran = max(0.0, time.time() - _ts(run.get("started_at")))
        bar = f' <progress value="{min(ran, est):.0f}" max="{est}"></progress>' if est else ""
        rows.append(f"running in {_html(run.get('region', ''))} for {_dur(ran)}" + (f" of ~{_dur(est)}" if est else "") + bar)
    elif plan and state in ("pending", "planned", "released"):
        wait = _ts(plan.get("start")) - time.time()
        when = f"starts in {_dur(wait)}" if wait > 0 else "window open"
        rows.append(f"{_html(plan.get('region', ''))}: {when} · {plan.get('expected_gco2', 0):.3g} gCO2e expected "
                    f"against {plan.get('baseline', {}).get('expected_gco2', 0):.3g} running now · {_html(plan.get('reason', ''))}")
    elif state == "pending":
        rows.append("waiting for a plan")
    if receipt:
        rows.append(f"{receipt.get('gco2', 0):.3g} gCO2e emitted, {receipt.get('saved_gco2', 0):.3g} saved against running at once "
                    f"({receipt.get('energy_kwh', 0) * 1000:.3g} Wh, {_html(receipt.get('energy_source', ''))})")
    if j.get("error"):
        rows.append(f'<span style="color:#c0392b">{_html(j["error"])}</span>')
    return '<div class="greenq-progress">' + "<br>".join(rows) + "</div>"


def _ts(rfc3339: Optional[str]) -> float:
    """Seconds since the epoch of an RFC 3339 time (0 when absent)."""
    if not rfc3339:
        return 0.0
    from datetime import datetime

    s = rfc3339.replace("Z", "+00:00")
    if "." in s:  # Python before 3.11 takes at most 6 fractional digits
        head, _, rest = s.partition(".")
        digits = "".join(ch for ch in rest if ch.isdigit())
        s = head + "." + digits[:6] + rest[len(digits):]
    return datetime.fromisoformat(s).timestamp()


def _dur(seconds: float) -> str:
    """45s, 2m30s, 9h42m."""
    s = int(max(0.0, seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m" + (f"{s % 60}s" if s % 60 else "")
    return f"{s // 3600}h" + (f"{s % 3600 // 60}m" if s % 3600 // 60 else "")


def _html(s: str) -> str:
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def job(deadline: str, duration: Union[None, int, str] = None, gpus: int = 1, client: Optional[Client] = None,
        **options: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorates a script's entry function so it can be sent to greenq.

    Calling the function runs it here as usual; ``fn.submit(*args)`` submits
    ``python <the function's script> *args`` with the given deadline and
    options instead, and returns the job. The script must run the function
    when executed (``if __name__ == "__main__": main()``).

        @greenq.job(deadline="24h", duration="3h")
        def main(): ...

        main.submit("--epochs", "3")
    """

    def wrap(fn: Callable[..., Any]) -> Callable[..., Any]:
        script = os.path.abspath(inspect.getfile(fn))

        @functools.wraps(fn)
        def local(*args: Any, **kwargs: Any) -> Any:
            return fn(*args, **kwargs)

        def submit(*args: str) -> Union[Job, List[Job]]:
            c = client or Client()
            opts = dict(options)
            opts.setdefault("name", fn.__name__)
            return c.submit(["python3", script, *map(str, args)],
                            deadline=deadline, duration=duration, gpus=gpus, **opts)

        local.submit = submit  # type: ignore[attr-defined]
        local.command = lambda *args: ["python3", script, *map(str, args)]  # type: ignore[attr-defined]
        return local

    return wrap
