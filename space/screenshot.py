"""Screenshot the NER tab after a query in headless Chromium: how `space/screenshots/ner.png` was made.

    python space/screenshot.py --runs_dir runs --size "da_tasks/teacher (L12-H384)"
    python space/screenshot.py --models_file my-models.json --lang en --text "Angela Merkel met Joe Biden in Paris."

It starts the app on 127.0.0.1 (models from a models file, or discovered under `--runs_dir` like `time-hub space
serve`), opens it in headless Chromium (Debian package `chromium`) with language, size and text in the URL (the app
pre-fills them from the query), clicks "Find entities" through the Chrome DevTools protocol (`websocket-client` from
PyPI), waits for the entities, and saves a PNG of the page from the top down to the highlighted entities. Run it from a
time-hub checkout with the `space` extra installed.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"]
BUTTON = "[...document.querySelectorAll('button')].find(b => b.innerText.trim() === 'Find entities')"
WIDTH = 1200


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Page:
    """The smallest Chrome DevTools protocol client: call a method, evaluate JavaScript, wait for a condition."""

    def __init__(self, websocket_url: str):
        import websocket

        self.ws = websocket.create_connection(websocket_url, timeout=60, suppress_origin=True)
        self.next_id = 0

    def call(self, method: str, **params) -> dict:
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:  # skip events until our answer arrives
            message = json.loads(self.ws.recv())
            if message.get("id") == self.next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})

    def js(self, expression: str):
        return self.call("Runtime.evaluate", expression=expression, returnByValue=True)["result"].get("value")

    def wait(self, expression: str, what: str, timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        while not self.js(expression):
            if time.monotonic() > deadline:
                raise TimeoutError(f"waited {timeout:.0f} s for {what}")
            time.sleep(0.5)


def open_page(port: int) -> Page:
    """The first page target of the Chromium listening on `port`."""
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=5) as response:
                targets = [t for t in json.loads(response.read()) if t["type"] == "page"]
            if targets:
                return Page(targets[0]["webSocketDebuggerUrl"])
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError("chromium did not open its DevTools port")
        time.sleep(0.3)


def screenshot(url: str, output: Path, chromium: str) -> str:
    """Load `url`, run the NER query, save the PNG; returns the entity list's text."""
    port = free_port()
    with tempfile.TemporaryDirectory() as profile:
        argv = [chromium, *FLAGS, f"--remote-debugging-port={port}", "--remote-allow-origins=*"]
        argv += [f"--user-data-dir={profile}", "--hide-scrollbars", f"--window-size={WIDTH},1600", "about:blank"]
        browser = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            page = open_page(port)
            page.call(
                "Emulation.setDeviceMetricsOverride", width=WIDTH, height=1600, deviceScaleFactor=1, mobile=False
            )
            page.call("Page.navigate", url=url)
            prefilled = "[...document.querySelectorAll('textarea')].some(t => t.value.length > 0)"
            page.wait(f"!!({BUTTON}) && {prefilled}", "the app to load and pre-fill the text")
            time.sleep(1)
            page.js(f"{BUTTON}.click(); true")
            page.wait("(document.querySelector('#ner-json')?.innerText || '').includes('start')", "the entities")
            time.sleep(1.5)  # let the highlight and the legend render
            bottom = page.js(
                "(() => { const r = document.querySelector('#ner-out').getBoundingClientRect();"
                " return r.bottom + window.scrollY + 16; })()"
            )
            shot = page.call(
                "Page.captureScreenshot",
                format="png",
                captureBeyondViewport=True,
                clip={"x": 0, "y": 0, "width": WIDTH, "height": bottom, "scale": 1},
            )
            output.parent.mkdir(parents=True, exist_ok=True)
            output.write_bytes(base64.b64decode(shot["data"]))
            return page.js("document.querySelector('#ner-out').innerText")
        finally:
            browser.terminate()
            browser.wait(timeout=30)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models_file", help="a models file (default: discover --runs_dir)")
    parser.add_argument("--runs_dir", default="runs")
    parser.add_argument("--lang", default="da")
    parser.add_argument("--size", help="a size of that language (default: the first)")
    parser.add_argument(
        "--text",
        default="Mette Frederiksen mødtes med Emmanuel Macron i Paris, før hun besøgte Novo Nordisk i Bagsværd.",
    )
    parser.add_argument("--output", default=str(HERE / "screenshots" / "ner.png"))
    parser.add_argument("--chromium", default="chromium")
    args = parser.parse_args()
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    sys.path.insert(0, str(HERE.parent))
    from time_hub.publish.space import discover, load_app, read_models_file

    models = read_models_file(args.models_file) if args.models_file else discover(args.runs_dir)
    app = load_app()
    demo = app.build_app(models)
    port = free_port()
    app.launch(demo, server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    try:
        query = {"lang": args.lang, "text": args.text} | ({"size": args.size} if args.size else {})
        url = f"http://127.0.0.1:{port}/?{urllib.parse.urlencode(query)}"
        entities = screenshot(url, Path(args.output), args.chromium)
    finally:
        demo.close()
    print(f"saved {args.output}; entity view: {' | '.join(entities.split())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
