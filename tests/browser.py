"""A real headless Chromium, driven over the DevTools protocol, for the report tests.

Chromium is started with `--remote-debugging-pipe`: the protocol's JSON messages travel over
file descriptors 3 (to the browser) and 4 (from it), each ended by a NUL byte, so no port, no
network and no extra Python package is needed. `open_page` loads a page and reports what a
person opening it would meet: console errors, uncaught exceptions, failed loads, images that
did not decode, and a full-page screenshot. Without a browser the calling test skips, naming the
Debian package (`tests.system_tools`); `.ci/run` installs the distribution's `chromium`.
"""

from __future__ import annotations

import base64
import json
import os
import select
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from tests.system_tools import missing

BROWSERS = ("chromium", "chromium-browser", "google-chrome")
IMAGES = ("JSON.stringify([...document.images].map(i => ({complete: i.complete, width: i.naturalWidth, "
          "alt: i.alt})))")


def browser_binary() -> str:
    """The first of `BROWSERS` on PATH; without one the calling test skips (or fails under CI)."""
    for name in BROWSERS:
        if shutil.which(name):
            return shutil.which(name)
    missing(f"a headless browser ({', '.join(BROWSERS)})", "Debian: apt-get install chromium")


class _Pipe:
    def __init__(self, process, to_browser, from_browser):
        self.process, self.to_browser, self.from_browser = process, to_browser, from_browser
        self.buffer, self.next_id, self.events = b"", 0, []

    def send(self, method, params=None, session=None, timeout=60.0):
        self.next_id += 1
        message = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self.to_browser, json.dumps(message).encode() + b"\0")
        while True:
            reply = self.receive(timeout)
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply["result"]
            self.events.append(reply)

    def wait_for(self, method, timeout=60.0):
        deadline = time.monotonic() + timeout
        while not any(e.get("method") == method for e in self.events):
            self.events.append(self.receive(deadline - time.monotonic()))

    def receive(self, timeout):
        while b"\0" not in self.buffer:
            ready, _, _ = select.select([self.from_browser], [], [], max(timeout, 0))
            if not ready:
                raise TimeoutError("the browser did not answer in time")
            chunk = os.read(self.from_browser, 1 << 20)
            if not chunk:
                raise RuntimeError("the browser closed the pipe")
            self.buffer += chunk
        message, self.buffer = self.buffer.split(b"\0", 1)
        return json.loads(message)


def open_page(path, screenshot, width: int = 1200) -> dict:
    """Load file `path` in headless Chromium; write a full-page PNG to `screenshot`.

    Returns `errors` (console errors, exceptions, error log entries, failed loads: strings) and
    `images` (per <img>: complete, natural width, alt text).
    """
    binary = browser_binary()
    to_browser_r, to_browser_w = os.pipe()
    from_browser_r, from_browser_w = os.pipe()
    profile = tempfile.mkdtemp(prefix="kseq-chromium-")

    def child_fds():
        """Chromium reads commands from fd 3 and writes replies to fd 4 (inheritable, unlike the originals)."""
        reads, writes = os.dup(to_browser_r), os.dup(from_browser_w)
        os.dup2(reads, 3)
        os.dup2(writes, 4)

    process = subprocess.Popen(
        [binary, "--headless", "--remote-debugging-pipe", "--no-sandbox", "--disable-gpu",
         "--no-first-run", "--disable-extensions", f"--user-data-dir={profile}", f"--window-size={width},900"],
        preexec_fn=child_fds, close_fds=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    os.close(to_browser_r)
    os.close(from_browser_w)
    pipe = _Pipe(process, to_browser_w, from_browser_r)
    try:
        target = pipe.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = pipe.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Runtime", "Log", "Page", "Network"):
            pipe.send(f"{domain}.enable", session=session)
        pipe.send("Page.navigate", {"url": Path(path).resolve().as_uri()}, session=session)
        pipe.wait_for("Page.loadEventFired")
        images = json.loads(pipe.send("Runtime.evaluate", {"expression": IMAGES, "returnByValue": True},
                                      session=session)["result"]["value"])
        shot = pipe.send("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True},
                         session=session)
        Path(screenshot).write_bytes(base64.b64decode(shot["data"]))
        return {"errors": _errors(pipe.events), "images": images}
    finally:
        try:
            pipe.send("Browser.close", timeout=10)
        except (RuntimeError, TimeoutError, OSError):
            pass
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        os.close(to_browser_w)
        os.close(from_browser_r)
        shutil.rmtree(profile, ignore_errors=True)


def _errors(events) -> list[str]:
    found = []
    for event in events:
        method, params = event.get("method"), event.get("params", {})
        if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            found.append("console: " + " ".join(str(a.get("value", a.get("description"))) for a in params["args"]))
        elif method == "Runtime.exceptionThrown":
            found.append("exception: " + params["exceptionDetails"].get("text", ""))
        elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
            found.append(f"log: {params['entry']['text']} {params['entry'].get('url', '')}")
        elif method == "Network.loadingFailed":
            found.append(f"load failed: {params.get('errorText')}")
    return found
