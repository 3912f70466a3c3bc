#!/usr/bin/env python3
"""Runs the two first-client tutorials (docs/clients/) against a live chat-server, together in
one chat: the Python client as Arina and the browser client, in headless Chromium on the
server's own origin, as Vlad. Each sends 3 messages and must receive the other's 3, across the
connection each drops on purpose. The server allows 2 sends a second after a burst of 1, so
both also ride out `rate_limited` refusals.

Usage: run_tutorials.py --server PATH/TO/chat-server
Needs requests, websockets, Selenium, chromium and chromium-driver (scripts/client-tutorials
installs them).
"""

import argparse
import json
import os
import secrets
import subprocess
import sys
import tempfile
import urllib.parse
import urllib.request
from pathlib import Path

from selenium import webdriver
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.chrome.service import Service

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))
from harness import Server  # noqa: E402

CLIENTS = ROOT / "docs" / "clients"
COUNT = 3
TIMEOUT = 90


def demo_group_last_seq(base):
    form = urllib.parse.urlencode({"grant_type": "password", "username": "Sergey", "password": "12345"}).encode()
    with urllib.request.urlopen(urllib.request.Request(f"{base}/auth/login", data=form), timeout=10) as response:
        token = json.load(response)["access_token"]
    request = urllib.request.Request(f"{base}/chats", headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        chat = next(chat for chat in json.load(response) if chat["name"] == "Demo group")
    with urllib.request.urlopen(
        urllib.request.Request(f"{base}/chats/{chat['id']}", headers={"Authorization": f"Bearer {token}"}), timeout=10
    ) as response:
        return json.load(response)["last_seq"]


def browser():
    options = webdriver.ChromeOptions()
    options.binary_location = os.environ.get("CHROMIUM", "/usr/bin/chromium")
    for argument in ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"]:
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver")), options=options)


def run_browser_client(driver, after):
    """Runs first-client.js as Vlad in the page; its log lines, and the texts it received."""
    script = (CLIENTS / "first-client.js").read_text() + """
        const done = arguments[arguments.length - 1];
        window.tutorialLines = [];
        firstClient({ user: "Vlad", password: "12345", chatName: "Demo group", send: %d, expect: %d,
                      afterSeq: %d, log: (line) => window.tutorialLines.push(line) })
          .then((outcome) => done({ lines: window.tutorialLines, texts: outcome.received.map((m) => m.text) }))
          .catch((error) => done({ lines: window.tutorialLines, error: String(error) }));
        """ % (COUNT, COUNT, after)
    try:
        return driver.execute_async_script(script)
    except TimeoutException:
        return {"lines": driver.execute_script("return window.tutorialLines") or [], "error": "timed out"}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--server", required=True)
    binary = os.path.abspath(parser.parse_args().server)
    with tempfile.TemporaryDirectory(prefix="client-tutorials-") as workdir:
        server = Server(binary, f"sqlite:{workdir}/chat.sqlite", workdir, "tutorials", {
            "CHAT_ENV": "local",  # loads the demo users and chats into the empty database
            "CHAT_JWT_SECRET": secrets.token_urlsafe(48),
            "CHAT_WS_SEND_RATE": "2",
            "CHAT_WS_SEND_BURST": "1",
        })
        base = server.url
        driver = None
        try:
            after = demo_group_last_seq(base)
            python_client = subprocess.Popen(
                [sys.executable, str(CLIENTS / "first_client.py"), "--url", base, "--user", "Arina",
                 "--password", "12345", "--chat", "Demo group", "--send", str(COUNT), "--expect", str(COUNT),
                 "--after-seq", str(after), "--timeout", str(TIMEOUT)],
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

            driver = browser()
            driver.set_script_timeout(TIMEOUT)
            # Any page of the server's origin: this one is the server's plain 404 page.
            driver.get(f"{base}/client-tutorial")
            result = run_browser_client(driver, after)
            print("browser client (Vlad):\n  " + "\n  ".join(result["lines"]))
            python_output, _ = python_client.communicate(timeout=TIMEOUT)
            print("Python client (Arina):\n  " + "\n  ".join(python_output.splitlines()))

            failures = []
            if "error" in result:
                failures.append(f"the browser client failed: {result['error']}")
            if result.get("texts") != [f"hello {n} from Arina (Python)" for n in range(1, COUNT + 1)]:
                failures.append(f"the browser client received {result.get('texts')}")
            if python_client.returncode != 0:
                failures.append(f"the Python client exited with {python_client.returncode}")
            received = [line.split(": ", 1)[1] for line in python_output.splitlines() if line.startswith("received")]
            if received != [f"hello {n} from Vlad (browser)" for n in range(1, COUNT + 1)]:
                failures.append(f"the Python client received {received}")
            for name, lines in (("browser", result["lines"]), ("Python", python_output.splitlines())):
                if not any("dropping the connection" in line for line in lines):
                    failures.append(f"the {name} client never dropped its connection")
                if not any("rate_limited: sending it again" in line for line in lines):
                    failures.append(f"the {name} client was never refused as rate_limited, or did not back off")
            if failures:
                sys.exit("client tutorials FAILED:\n- " + "\n- ".join(failures))
            print("client tutorials passed: each client received the other's messages across a dropped connection")
        finally:
            if driver:
                driver.quit()
            server.stop()


if __name__ == "__main__":
    main()
