"""Helpers (no tests): headless Chromium driven over the DevTools protocol on a pipe, standard library only.

Chromium started with --remote-debugging-pipe reads protocol commands from fd 3 and writes
replies and events to fd 4, one JSON message each, NUL-terminated: no chromedriver, no
websocket package, no port to open. The flags keep it off the network and out of the
user's profile (a fresh --user-data-dir per browser).

    python tests/cdp_browser.py SITE_DIR OUT.png   # check every page of a site, save a screenshot
"""

from __future__ import annotations

import base64
import json
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-default-apps",
         "--disable-extensions", "--mute-audio", "--hide-scrollbars")
CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def find_chromium() -> str | None:
    """The Chromium binary: $CHROMIUM, else the first of CANDIDATES on PATH."""
    env = os.environ.get("CHROMIUM")
    if env:
        return env if Path(env).exists() else None
    for name in CANDIDATES:
        path = shutil.which(name)
        if path:
            return path
    return None


class BrowserError(RuntimeError):
    """The browser answered a command with an error, or did not answer in time."""


class Browser:
    """One headless Chromium with one page (tab); commands are synchronous, events are kept."""

    def __init__(self, binary: str, width: int = 1280, height: int = 900, timeout: float = 30.0) -> None:
        self.timeout = timeout
        self.profile = tempfile.mkdtemp(prefix="augbench-chromium-")
        to_child_r, self._to_child = os.pipe()
        self._from_child, from_child_w = os.pipe()

        def _fds() -> None:  # in the child: the protocol's fixed descriptors
            os.dup2(to_child_r, 3)
            os.dup2(from_child_w, 4)

        self.proc = subprocess.Popen(
            [binary, *FLAGS, f"--user-data-dir={self.profile}", "--remote-debugging-pipe",
             f"--window-size={width},{height}", "about:blank"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            preexec_fn=_fds, pass_fds=(3, 4))
        os.close(to_child_r)
        os.close(from_child_w)
        self._next = 0
        self._inbox: queue.Queue[dict[str, Any]] = queue.Queue()
        self.events: list[dict[str, Any]] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self._stderr: list[bytes] = []
        threading.Thread(target=lambda: self._stderr.extend(self.proc.stderr or []), daemon=True).start()
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        for domain in ("Page", "Runtime", "Log"):
            self.call(f"{domain}.enable", session=True)
        self.call("Emulation.setDeviceMetricsOverride", session=True, width=width, height=height,
                  deviceScaleFactor=1, mobile=False)

    # ------------------------------------------------------------------ protocol
    def _read(self) -> None:
        buf = b""
        while True:
            try:
                chunk = os.read(self._from_child, 1 << 16)
            except OSError:
                break
            if not chunk:
                break
            buf += chunk
            while b"\0" in buf:
                msg, buf = buf.split(b"\0", 1)
                self._inbox.put(json.loads(msg))

    def call(self, method: str, session: bool = False, **params: Any) -> dict[str, Any]:
        """Send one command (to the page's session with `session`), wait for its reply, keep the events."""
        self._next += 1
        msg: dict[str, Any] = {"id": self._next, "method": method, "params": params}
        if session:
            msg["sessionId"] = self.session
        os.write(self._to_child, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                reply = self._inbox.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                raise BrowserError(f"{method}: no reply within {self.timeout:.0f} s; stderr: "
                                   f"{b''.join(self._stderr)[-400:]!r}") from None
            if reply.get("id") == self._next:
                if "error" in reply:
                    raise BrowserError(f"{method}: {reply['error']}")
                return dict(reply.get("result", {}))
            if "method" in reply:
                self.events.append(reply)

    def wait_event(self, method: str, since: int) -> dict[str, Any]:
        """The first event `method` after position `since` of `events`, waiting for it if needed."""
        deadline = time.monotonic() + self.timeout
        while True:
            for ev in self.events[since:]:
                if ev.get("method") == method:
                    return ev
            try:
                msg = self._inbox.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                raise BrowserError(f"no {method} event within {self.timeout:.0f} s") from None
            if "method" in msg:
                self.events.append(msg)

    # ------------------------------------------------------------------ pages
    def open(self, url: str) -> list[str]:
        """Load `url` and wait for its load event; returns the console errors it produced."""
        start = len(self.events)
        self.call("Page.navigate", session=True, url=url)
        self.wait_event("Page.loadEventFired", start)
        self.evaluate("new Promise(r => requestAnimationFrame(() => setTimeout(r, 0)))")  # scripts ran
        return errors(self.events[start:])

    def errors_since(self, start: int) -> list[str]:
        """Console errors among the events after position `start`."""
        return errors(self.events[start:])

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (promises awaited); a thrown error raises."""
        res = self.call("Runtime.evaluate", session=True, expression=expression, returnByValue=True,
                        awaitPromise=True)
        if "exceptionDetails" in res:
            raise BrowserError(f"{expression[:60]}...: {res['exceptionDetails'].get('text')}")
        return res.get("result", {}).get("value")

    def screenshot(self, path: Path, full_page: bool = False) -> Path:
        """A PNG of the page (the viewport, or the whole page with `full_page`)."""
        params: dict[str, Any] = {"format": "png"}
        if full_page:
            size = self.call("Page.getLayoutMetrics", session=True)["cssContentSize"]
            params.update(captureBeyondViewport=True, clip={"x": 0, "y": 0, "width": size["width"],
                                                            "height": min(size["height"], 12000), "scale": 1})
        data = self.call("Page.captureScreenshot", session=True, **params)["data"]
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data))
        return path

    def close(self) -> None:
        try:
            os.write(self._to_child, json.dumps({"id": 0, "method": "Browser.close"}).encode() + b"\0")
            self.proc.wait(timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.wait()
        for fd in (self._to_child, self._from_child):
            try:
                os.close(fd)
            except OSError:
                pass
        shutil.rmtree(self.profile, ignore_errors=True)

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def errors(events: list[dict[str, Any]]) -> list[str]:
    """Console errors among protocol events: uncaught exceptions, console.error, failed loads."""
    out = []
    for ev in events:
        method, p = ev.get("method"), ev.get("params", {})
        if method == "Runtime.exceptionThrown":
            d = p.get("exceptionDetails", {})
            out.append(f"exception: {d.get('exception', {}).get('description') or d.get('text')}")
        elif method == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
            args = p.get("args", [])
            out.append("console.error: " + " ".join(str(a.get("value", a.get("description"))) for a in args))
        elif method == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
            e = p["entry"]
            out.append(f"{e.get('source')}: {e.get('text')} {e.get('url', '')}".strip())
    return out


BROKEN_IMAGES = "Array.from(document.images).filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src)"
#: What scrolls sideways: the page itself, or any element whose content is wider than its box.
OVERFLOW = """(() => { const out = [];
  if (document.documentElement.scrollWidth > window.innerWidth + 1)
    out.push('page: ' + document.documentElement.scrollWidth + ' px wide in ' + window.innerWidth);
  document.querySelectorAll('*').forEach(el => {
    const s = getComputedStyle(el);
    if ((s.overflowX === 'auto' || s.overflowX === 'scroll') && el.scrollWidth > el.clientWidth + 1) {
      const inner = el.querySelector('table');
      out.push((inner && inner.id ? '#' + inner.id : el.tagName.toLowerCase()) + ': ' + el.scrollWidth + ' px in '
               + el.clientWidth);
    }
  });
  return out; })()"""
WIDTH = 1400  # the width pages must read at without horizontal scrolling


def check_site(site: Path, screenshot: Path | None = None, binary: str | None = None,
               shots: Path | None = None) -> dict[str, Any]:
    """Open every page of a site at `WIDTH` px: console errors, broken images and what scrolls sideways per
    page, a screenshot of its first benchmark page (or the index), and with `shots` a full-page
    screenshot of the index, each benchmark page and the first method page of each benchmark."""
    binary = binary or find_chromium()
    if binary is None:
        raise BrowserError("no Chromium found (set $CHROMIUM or install chromium)")
    site = Path(site).resolve()
    pages = sorted(site.rglob("*.html"))
    report: dict[str, Any] = {"pages": len(pages), "errors": {}, "broken_images": {}, "images": 0, "overflow": {},
                              "shots": []}
    firsts = sorted(site.glob("*/index.html"))
    method_pages = [sorted(p for p in f.parent.glob("*.html") if p.name != "index.html")[:1] for f in firsts]
    wanted = {site / "index.html", *firsts, *(p for group in method_pages for p in group)}
    with Browser(binary, width=WIDTH) as b:
        for page in pages:
            rel = page.relative_to(site).as_posix()
            errs = b.open(page.as_uri())
            if errs:
                report["errors"][rel] = errs
            broken = b.evaluate(BROKEN_IMAGES)
            report["images"] += b.evaluate("document.images.length")
            if broken:
                report["broken_images"][rel] = broken
            wide = b.evaluate(OVERFLOW)
            if wide:
                report["overflow"][rel] = wide
            if shots is not None and page in wanted:
                name = rel.replace("/", "--").replace(".html", ".png")
                report["shots"].append(str(b.screenshot(Path(shots) / name, full_page=True)))
        if screenshot is not None:
            b.open((firsts[0] if firsts else site / "index.html").as_uri())
            report["screenshot"] = str(b.screenshot(screenshot))
    return report


if __name__ == "__main__":
    if len(sys.argv) != 3:
        print(__doc__.strip().splitlines()[-1].strip(), file=sys.stderr)
        raise SystemExit(2)
    result = check_site(Path(sys.argv[1]), Path(sys.argv[2]))
    print(json.dumps(result, indent=1))
    raise SystemExit(1 if result["errors"] or result["broken_images"] or result["overflow"] else 0)
