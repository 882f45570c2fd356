"""The HTML report in a real headless Chromium: loads from file://, no console errors,
no network request, every image decoded, and a full-page screenshot saved.

Chromium is driven over the DevTools protocol through a pipe (--remote-debugging-pipe),
so no port is opened and no websocket package is needed. Set CIFARLAB_REPORT_SCREENSHOT
to a path to keep a copy of the screenshot.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
SECTIONS = [
    "data",
    "model",
    "training",
    "calibration",
    "improvements",
    "seeds",
    "comparison",
]


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


class DevTools:
    """A minimal DevTools-protocol client over Chromium's pipe (fd 3 in, fd 4 out)."""

    def __init__(self, binary: str, profile: Path) -> None:
        to_chrome_r, self._to_chrome = os.pipe()
        self._from_chrome, from_chrome_w = os.pipe()

        def wire_fds() -> None:  # runs in the child: put the pipe ends on fds 3 and 4
            # Copies first, so neither end is clobbered when it already sits on fd 3 or 4.
            a, b = os.dup(to_chrome_r), os.dup(from_chrome_w)
            os.dup2(a, 3)
            os.dup2(b, 4)

        self.proc = subprocess.Popen(
            [
                binary,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--hide-scrollbars",
                f"--user-data-dir={profile}",
                "--remote-debugging-pipe",
                "about:blank",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=wire_fds,
            # preexec_fn runs before the child closes unlisted fds: keep 3 and 4 listed.
            pass_fds=(3, 4, to_chrome_r, from_chrome_w),
        )
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self._buf = b""
        self._id = 0
        self.events: list[dict] = []

    def _read_message(self, deadline: float) -> dict:
        while b"\0" not in self._buf:
            if time.monotonic() > deadline:
                raise TimeoutError("no answer from Chromium")
            chunk = os.read(self._from_chrome, 1 << 20)
            if not chunk:
                raise RuntimeError("Chromium closed the DevTools pipe")
            self._buf += chunk
        raw, self._buf = self._buf.split(b"\0", 1)
        return json.loads(raw)

    def call(self, method: str, session: str | None = None, timeout: float = 90, **params):
        self._id += 1
        msg = {"id": self._id, "method": method, "params": params}
        if session:
            msg["sessionId"] = session
        os.write(self._to_chrome, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            reply = self._read_message(deadline)
            if reply.get("id") == self._id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_for(self, method: str, timeout: float = 90) -> dict:
        for i, ev in enumerate(self.events):
            if ev.get("method") == method:
                return self.events.pop(i)
        deadline = time.monotonic() + timeout
        while True:
            ev = self._read_message(deadline)
            if ev.get("method") == method:
                return ev
            self.events.append(ev)

    def close(self) -> None:
        try:
            self.call("Browser.close", timeout=10)
        except Exception:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self._to_chrome)
        os.close(self._from_chrome)


def test_report_in_headless_chromium(study_report, tmp_path):
    binary = _chromium()
    if binary is None:
        pytest.skip("chromium not installed (apt-get install chromium; .ci/run installs it)")
    browser = DevTools(binary, tmp_path / "profile")
    try:
        target = browser.call("Target.createTarget", url="about:blank")["targetId"]
        session = browser.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            browser.call(f"{domain}.enable", session)
        browser.call(
            "Emulation.setDeviceMetricsOverride",
            session,
            width=1280,
            height=1000,
            deviceScaleFactor=1,
            mobile=False,
        )
        url = study_report.resolve().as_uri()
        assert url.startswith("file://")
        browser.call("Page.navigate", session, url=url)
        browser.wait_for("Page.loadEventFired")
        probe = browser.call(
            "Runtime.evaluate",
            session,
            returnByValue=True,
            awaitPromise=True,
            expression="""(async () => {
                const imgs = [...document.images];
                await Promise.all(imgs.map(i => i.decode().catch(() => null)));
                return {
                  url: location.href,
                  ready: document.readyState,
                  sections: [...document.querySelectorAll('section')].map(s => s.id),
                  images: imgs.map(i => ({w: i.naturalWidth, h: i.naturalHeight, ok: i.complete,
                                          alt: i.alt})),
                  height: Math.ceil(document.documentElement.scrollHeight),
                };
            })()""",
        )["result"]["value"]
        assert probe["url"] == url and probe["ready"] == "complete"
        assert probe["sections"] == SECTIONS
        assert len(probe["images"]) >= 10
        broken = [i for i in probe["images"] if not (i["ok"] and i["w"] > 0 and i["h"] > 0)]
        assert not broken, broken

        # The whole page in one picture.
        browser.call(
            "Emulation.setDeviceMetricsOverride",
            session,
            width=1280,
            height=probe["height"],
            deviceScaleFactor=1,
            mobile=False,
        )
        shot = browser.call(
            "Page.captureScreenshot", session, format="png", captureBeyondViewport=True
        )
        import base64

        png = base64.b64decode(shot["data"])
        assert png.startswith(PNG_MAGIC)
        screenshot = tmp_path / "report-screenshot.png"
        screenshot.write_bytes(png)
        if os.environ.get("CIFARLAB_REPORT_SCREENSHOT"):
            shutil.copyfile(screenshot, os.environ["CIFARLAB_REPORT_SCREENSHOT"])
        print(f"screenshot: {screenshot}")

        errors = [
            ev["params"]
            for ev in browser.events
            if ev.get("method") == "Runtime.exceptionThrown"
            or (
                ev.get("method") == "Runtime.consoleAPICalled"
                and ev["params"].get("type") in ("error", "assert")
            )
            or (
                ev.get("method") == "Log.entryAdded"
                and ev["params"]["entry"].get("level") == "error"
            )
        ]
        assert not errors, errors
        requested = [
            ev["params"]["request"]["url"]
            for ev in browser.events
            if ev.get("method") == "Network.requestWillBeSent"
        ]
        assert requested and all(u.startswith(("file:", "data:")) for u in requested), requested
    finally:
        browser.close()
