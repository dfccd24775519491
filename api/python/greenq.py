"""greenq client: submit and follow carbon-aware ML jobs from Python.

Standard library only; one file you can copy next to a notebook.

    >>> import greenq
    >>> c = greenq.Client()                      # GREENQ_API_URL, GREENQ_TOKEN
    >>> job = c.submit(["python", "train.py"], deadline="24h", duration="3h")
    >>> c.wait(job["id"])                        # live progress
    >>> c.get(job["id"])["receipt"]["saved_gco2"]

Errors from the API raise GreenqError with its code, message and the
offending field.
"""

from __future__ import annotations

import codecs
import functools
import inspect
import json
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Sequence, Union

__all__ = ["Client", "GreenqError", "job", "FINAL_STATES", "DEFAULT_URL"]

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


class Client:
    """A greenq API client.

    Args:
        url: the API's base URL; default $GREENQ_API_URL or http://127.0.0.1:8080.
        token: bearer token; default $GREENQ_TOKEN (none for a local dev server).
        timeout: seconds per HTTP request.
    """

    def __init__(self, url: Optional[str] = None, token: Optional[str] = None, timeout: float = 30.0) -> None:
        self.url = (url or os.environ.get("GREENQ_API_URL") or DEFAULT_URL).rstrip("/")
        self.token = token if token is not None else os.environ.get("GREENQ_TOKEN")
        self.timeout = timeout

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
        req = urllib.request.Request(url, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as res:
                payload = res.read()
                if headers_out is not None:
                    headers_out.update(res.headers.items())
        except urllib.error.HTTPError as e:
            raise self._error(e.code, e.read()) from None
        except urllib.error.URLError as e:
            raise GreenqError(0, "unavailable", f"cannot reach greenq at {self.url}: {e.reason}") from None
        if raw:
            return payload
        return json.loads(payload) if payload else None

    @staticmethod
    def _error(status: int, payload: bytes) -> GreenqError:
        try:
            err = json.loads(payload)["error"]
            return GreenqError(status, err.get("code", "unknown"), err.get("message", ""), err.get("field"))
        except (ValueError, KeyError, TypeError):
            return GreenqError(status, "unknown", payload.decode("utf-8", "replace")[:500] or f"HTTP {status}")

    # -- jobs --------------------------------------------------------------

    def submit(self, command: Union[str, Sequence[str]], deadline: str, duration: Union[None, int, str] = None,
               gpus: int = 1, regions: Optional[Sequence[str]] = None, name: Optional[str] = None,
               kind: Optional[str] = None, interruptible: bool = False, trials: Optional[int] = None,
               tags: Optional[Mapping[str, str]] = None, key: Optional[str] = None,
               env: Optional[Mapping[str, str]] = None, secrets: Optional[Mapping[str, str]] = None,
               workdir: Optional[str] = None, image: Optional[str] = None,
               grace: Union[None, int, str] = None) -> Union[Job, List[Job]]:
        """Submits a job and returns it (a list of jobs when trials > 1).

        Args:
            command: the program and its arguments (argv; never run by a shell).
                A string is taken as a single program with no arguments.
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
        """
        argv = [command] if isinstance(command, str) else list(command)
        body: Dict[str, Any] = {"command": argv, "deadline": deadline, "gpus": gpus}
        optional = {"duration_estimate_s": _duration_seconds(duration), "regions": list(regions) if regions else None,
                    "name": name, "kind": kind, "trials": trials, "tags": dict(tags) if tags else None, "key": key,
                    "env": dict(env) if env else None, "secrets": dict(secrets) if secrets else None,
                    "workdir": workdir, "image": image, "grace_s": _duration_seconds(grace)}
        body.update({k: v for k, v in optional.items() if v is not None})
        if interruptible:
            body["interruptible"] = True
        out = self._request("POST", "/v1/jobs", body)
        return out["jobs"] if "jobs" in out and "id" not in out else out

    def submit_batch(self, jobs: Sequence[Mapping[str, Any]]) -> List[Job]:
        """Submits several jobs (API field names) at once; none is stored if any is refused."""
        return self._request("POST", "/v1/jobs", {"jobs": [dict(j) for j in jobs]})["jobs"]

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
    """Shows a job's progress in Jupyter, a terminal, or a plain log."""

    def __init__(self, id: str) -> None:
        self.id, self.last, self.handle, self.tty = id, None, None, False
        try:
            from IPython import get_ipython  # type: ignore
            from IPython.display import display  # type: ignore

            if get_ipython() is not None and "IPKernelApp" in get_ipython().config:
                self.handle = display({"text/plain": f"{id}: waiting"}, raw=True, display_id=True)
        except Exception:  # IPython absent or not a kernel: fall back to text
            self.handle = None
        if self.handle is None:
            self.tty = sys.stderr.isatty()

    def update(self, j: Job, elapsed: float) -> None:
        line = f"{describe(j)} [{elapsed:.0f} s]"
        if self.handle is not None:
            self.handle.update({"text/plain": line, "text/html": "<code>" + _html(line) + "</code>"}, raw=True)
        elif self.tty:
            sys.stderr.write("\r\x1b[K" + line)
            sys.stderr.flush()
        elif j.get("state") != self.last:
            print(line, file=sys.stderr)
        self.last = j.get("state")

    def close(self) -> None:
        if self.handle is None and self.tty:
            sys.stderr.write("\n")


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
