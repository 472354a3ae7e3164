"""No secret in any log line or error body (issue 13, "Security"), over a whole `fanmeter up` run.

`fanmeter up` starts everything (worker, admin service, broker, demo origin), prints its demo people's
tokens and one-time console links (shown once, by design), and serves. The test then makes secrets
of every kind through the API (a person's token, an ingest token, a service's publish token), uses
each rightly and wrongly (events, publishes with signed headers, console sign-ins, forged Grip-Sigs),
stops `up` with SIGTERM, and searches every process's output (`up`'s own, and every log in its data
directory) and every error body it received for every secret: tokens, link secrets, the GRIP key,
and any JWT (a Grip-Sig). Only `up`'s sign-in block and its `curl` example may show the demo's.
"""

from __future__ import annotations

import re
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest

from fanmeter import live_demo
from tests.hostile_events import record_figures
from tests.stack import free_port, fresh_database, stack_environment, start_fanmeter

READY = "Ctrl-C stops."
# The lines of `up`'s output that show secrets on purpose: the sign-in block, and the curl example.
SHOWN = re.compile(r"^  \w+ +\(.*\) Authorization: Bearer |^    sign in: |^publish: curl -H 'Authorization: Bearer ")
JWT = re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.")


def _wait_for(log: Path, process: subprocess.Popen[bytes], text: str, timeout_s: float = 400) -> str:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        out = log.read_text(errors="replace")
        if text in out:
            return out
        assert process.poll() is None, out[-3000:]
        time.sleep(0.5)
    raise AssertionError(f"`fanmeter up` did not print {text!r}:\n{log.read_text(errors='replace')[-3000:]}")


class Exercise:
    """Secrets made and used against the running stack, and every error body received."""

    def __init__(self, out: str) -> None:
        self.admin_url = re.search(r"^admin service: (\S+)", out, re.MULTILINE)[1]  # type: ignore[index]
        self.broker_url = re.search(r"^live traffic: broker (\S+)", out, re.MULTILINE)[1]  # type: ignore[index]
        self.origin_url = re.search(r"in front of the demo origin (\S+)", out)[1]  # type: ignore[index]
        people = re.findall(r"^  (\w+) +\((\w+) *\) Authorization: Bearer (fm_\S+)", out, re.MULTILINE)
        self.tokens = {f"{role}@{where}": token for role, where, token in people}
        self.secrets = {*self.tokens.values(), live_demo.TOKEN, live_demo.GRIP_KEY}
        self.secrets |= set(re.findall(r"sign-in/link\?secret=([^\s&]+)", out))
        self.error_bodies: list[str] = []
        self.client = httpx.Client(timeout=30)

    def bearer(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who]}"}

    def call(self, method: str, url: str, **kwargs: object) -> httpx.Response:
        response = self.client.request(method, url, **kwargs)  # type: ignore[arg-type]
        if response.status_code >= 400:
            self.error_bodies.append(f"{method} {url} -> {response.status_code}: {response.text}")
        return response

    def new_secret(self, response: httpx.Response, field: str = "token") -> str:
        assert response.status_code == 201, response.text
        secret: str = response.json()[field]
        self.secrets.add(secret)
        return secret


def _make_and_use_secrets(run: Exercise) -> None:
    admin, api = run.bearer("admin@platform"), run.admin_url
    person = run.call("POST", f"{api}/v1/accounts/acme/users", headers=admin,
                      json={"email": "leak-check@acme.test", "role": "engineer"}).json()  # fmt: skip
    engineer = run.new_secret(run.call("POST", f"{api}/v1/users/{person['id']}/tokens", headers=admin, json={}))
    ingest = run.new_secret(run.call("POST", f"{api}/v1/ingest-tokens", headers=admin, json={"name": "leaks"}))
    as_engineer = {"Authorization": f"Bearer {engineer}"}
    service_id = run.call("GET", f"{api}/v1/accounts/acme/services", headers=as_engineer).json()[0]["id"]
    tokens_url = f"{api}/v1/services/{service_id}/publish-tokens"
    publish = run.new_secret(run.call("POST", tokens_url, headers=as_engineer, json={"name": "leaks"}))
    event = '{"specversion":"1.0","id":"leak-1","source":"broker/leak","type":"nope","time":"x","data":{}}'
    batch = {"Content-Type": "application/cloudevents-batch+json"}
    for token in (ingest, engineer, publish, ingest + "x", "fm_" + "0" * 40):  # right, then wrong in four ways
        run.call(
            "POST", f"{api}/v1/events", content=f"[{event}]", headers={**batch, "Authorization": f"Bearer {token}"}
        )
    for token in (engineer, publish):  # a person's token where a publish token goes, and the reverse
        run.call("GET", f"{api}/v1/accounts/acme/services", headers={"Authorization": f"Bearer {token}"})
        run.call("POST", f"{run.broker_url}/service/{live_demo.SERVICE}/publish/", json={"items": []},
                 headers={"Authorization": f"Bearer {token}", "Fastly-Key": token})  # fmt: skip
    run.call("POST", f"{run.broker_url}/service/{live_demo.SERVICE}/publish/", content=b"{not json",
             headers={"Authorization": f"Bearer {live_demo.TOKEN}"})  # fmt: skip
    for sig in ("", "forged", JWT.pattern):
        run.call("GET", f"{run.origin_url}/stream", headers={"Grip-Sig": sig} if sig else {})
    _console_sign_ins(run)


def _console_sign_ins(run: Exercise) -> None:
    """Sign in with a one-time link (then reuse it), and with a token through the form, wrongly and rightly."""
    link = next(s for s in run.secrets if not s.startswith("fm_") and s not in (live_demo.TOKEN, live_demo.GRIP_KEY))
    for _ in range(2):  # the second use of a one-time link is refused
        with httpx.Client(base_url=run.admin_url, timeout=30) as browser:
            page = browser.get(f"/console/sign-in/link?secret={link}")
            form = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
            answer = browser.post("/console/sign-in/link", data={"csrf_token": form[1] if form else "", "secret": link})
            if answer.status_code >= 400:
                run.error_bodies.append(f"console link -> {answer.status_code}: {answer.text}")
    with httpx.Client(base_url=run.admin_url, timeout=30) as browser:
        form = re.search(r'name="csrf_token" value="([^"]+)"', browser.get("/console/sign-in").text)
        for token in (run.tokens["finance@platform"] + "x", run.tokens["finance@platform"]):
            answer = browser.post("/console/sign-in", data={"csrf_token": form[1] if form else "", "token": token})
            if answer.status_code >= 400:
                run.error_bodies.append(f"console sign-in -> {answer.status_code}: {answer.text}")


@pytest.mark.timeout(900)
def test_no_secret_reaches_any_log_line_or_error_body_in_a_whole_fanmeter_up_run(tmp_path: Path) -> None:
    env = {**stack_environment(tmp_path), "FANMETER_ADMIN_PORT": str(free_port())}
    up_log = tmp_path / "up-output.log"
    with fresh_database() as url:
        if url:
            env["FANMETER_DATABASE_URL"] = url
        up = start_fanmeter(env, up_log, "up", "--events", "200", start_new_session=True)
        try:
            run = Exercise(_wait_for(up_log, up, READY))
            with run.client:
                _make_and_use_secrets(run)
        finally:
            up.send_signal(signal.SIGTERM)
            up.wait(timeout=60)
    logs = {path.name: path.read_text(errors="replace") for path in tmp_path.rglob("*.log") if path != up_log}
    shown = up_log.read_text(errors="replace")
    logs["up (output, but the lines that show secrets on purpose)"] = "\n".join(
        line for line in shown.splitlines() if not SHOWN.match(line)
    )
    logs["error bodies"] = "\n".join(run.error_bodies)
    leaks = [(name, secret[:12]) for name, text in logs.items() for secret in run.secrets if secret in text]
    leaks += [(name, match[:12]) for name, text in logs.items() for match in JWT.findall(text)]
    assert len(run.secrets) >= 12 and len(run.error_bodies) >= 8 and {"worker.log", "admin.log"} <= set(logs)
    assert all(token in shown for token in run.tokens.values())  # the search does see a secret where it is
    statuses = Counter(body.split(" -> ")[1][:3] for body in run.error_bodies)
    lines = sum(text.count("\n") + 1 for text in logs.values())
    record_figures("no secret in logs", len(run.secrets), statuses, crashes=0, logs=len(logs), lines_searched=lines)
    assert leaks == [], leaks
