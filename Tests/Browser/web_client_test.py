#!/usr/bin/env python3
"""End-to-end test of the web client: two real headless Chromium sessions against a live
chat-server on a throwaway SQLite database.

Alice registers through the page, creates a group and adds Bob; Bob logs in and sees it
appear live with an unread badge; they exchange messages both ways (Enter, Shift+Enter) and
Alice's ticks turn to read when Bob has the message on screen; Bob's typing shows on Alice's
page; a message carrying HTML is shown as text and runs nothing, and addresses become safe
links; a text over the length limit is refused whole; a burst of 220 messages,
typed faster than the server's default rate limit takes them, is stored in the order typed
and shown so on both sides; the server is stopped and restarted while Alice sends, and her pending
message is sent once after the page reconnects; the database is restored from a backup, and both
pages reload and show the restored chat; Alice adds Carol, who logs in in Bob's
window and pages back through the whole history without gaps, repeats or jumps; /docs renders
the API reference in a third window that can reach no other host.
Screenshots of both windows go to --artifacts.

Usage: web_client_test.py --server PATH/TO/chat-server [--artifacts DIR]
Needs Debian's chromium and chromium-driver and Selenium (scripts/browser-test installs them).
"""

import argparse
import json
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

from selenium import webdriver
from selenium.common.exceptions import (
    NoAlertPresentException,
    NoSuchElementException,
    StaleElementReferenceException,
    TimeoutException,
    WebDriverException,
)
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

PASSWORD = "correct horse battery"
XSS = "<img src=x onerror=alert(1)>"
BURST = 220
WAIT_SECONDS = 30
# The burst is stored at the default rate limit (20 sends a second after a burst of 40).
BURST_WAIT_SECONDS = 120


class Server:
    """chat-server on a free loopback port and a SQLite file that outlives restarts."""

    def __init__(self, binary, workdir):
        self.binary = binary
        self.workdir = workdir
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.base = f"http://127.0.0.1:{self.port}"
        self.env = dict(
            os.environ,
            CHAT_ENV="test",
            CHAT_HOST="127.0.0.1",
            CHAT_PORT=str(self.port),
            CHAT_BCRYPT_COST="4",
            CHAT_JWT_SECRET=secrets.token_urlsafe(48),
            DATABASE_URL=f"sqlite:{workdir}/chat.sqlite",
        )
        self.log = open(os.path.join(workdir, "server.log"), "ab")
        self.process = None

    def start(self):
        self.process = subprocess.Popen(
            [self.binary, "serve"], env=self.env, cwd=self.workdir, stdout=self.log, stderr=subprocess.STDOUT
        )
        deadline = time.time() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{self.base}/health/ready", timeout=2):
                    return
            except (urllib.error.URLError, ConnectionError):
                if self.process.poll() is not None or time.time() > deadline:
                    raise RuntimeError(f"chat-server did not start; see {self.log.name}")
                time.sleep(0.1)

    def command(self, *arguments):
        """Runs an admin command of the binary on the server's database."""
        subprocess.run([self.binary, *arguments], env=self.env, cwd=self.workdir, stdout=self.log,
                       stderr=subprocess.STDOUT, check=True, timeout=120)

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)

    def register(self, name):
        body = json.dumps({"name": name, "email": f"{name.lower()}@example.com", "password": PASSWORD}).encode()
        request = urllib.request.Request(
            f"{self.base}/user", data=body, headers={"Content-Type": "application/json"}, method="POST"
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 201, response.status


    def log_in_status(self, name, password):
        """The status `POST /auth/login` answers for these credentials."""
        form = urllib.parse.urlencode({"grant_type": "password", "username": name, "password": password}).encode()
        try:
            with urllib.request.urlopen(urllib.request.Request(f"{self.base}/auth/login", data=form), timeout=10) as response:
                return response.status
        except urllib.error.HTTPError as error:
            return error.code

    def change_password(self, name, new_password):
        """Logs in with the API (a session of its own) and changes the password, which ends every
        session of the user's, the pages' included."""
        form = urllib.parse.urlencode({"grant_type": "password", "username": name, "password": PASSWORD}).encode()
        with urllib.request.urlopen(urllib.request.Request(f"{self.base}/auth/login", data=form), timeout=10) as response:
            token = json.load(response)["access_token"]
        body = json.dumps({"current_password": PASSWORD, "new_password": new_password}).encode()
        request = urllib.request.Request(
            f"{self.base}/user/password", data=body, method="POST",
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"})
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 200, response.status


class Window:
    """One headless Chromium session with helpers for the client's pages."""

    def __init__(self, label, base, size=(1200, 800), extra_arguments=()):
        self.label = label
        self.base = base
        options = webdriver.ChromeOptions()
        options.binary_location = os.environ.get("CHROMIUM", "/usr/bin/chromium")
        for argument in ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                         f"--window-size={size[0]},{size[1]}", "--lang=en-US", *extra_arguments]:
            options.add_argument(argument)
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        service = Service(os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver"))
        self.driver = webdriver.Chrome(service=service, options=options)
        self.console = []

    def open(self, path):
        self.driver.get(self.base + path)

    def wait(self, condition, what, seconds=WAIT_SECONDS):
        try:
            # Elements re-render while a condition looks at them: a stale or missing one means "not yet".
            return WebDriverWait(
                self.driver, seconds, poll_frequency=0.05,
                ignored_exceptions=(StaleElementReferenceException, NoSuchElementException),
            ).until(lambda _: self._unless_detached(condition))
        except TimeoutException:
            raise AssertionError(f"{self.label}: timed out waiting until {what}") from None

    @staticmethod
    def _unless_detached(condition):
        """Runs a wait's condition; an element the page dropped while it was read means "not yet".

        Chromedriver reports an element removed between finding it and reading it (a page that
        navigates or re-renders) as a stale element, or, since Chromium 156, as a generic
        "Node with given id does not belong to the document" error. Any other error still fails.
        """
        try:
            return condition()
        except WebDriverException as error:
            if "does not belong to the document" in (error.msg or ""):
                return False
            raise

    def find(self, selector):
        return self.driver.find_element(By.CSS_SELECTOR, selector)

    def finds(self, selector):
        return self.driver.find_elements(By.CSS_SELECTOR, selector)

    def js(self, script, *arguments):
        return self.driver.execute_script(script, *arguments)

    def fill(self, selector, text):
        field = self.find(selector)
        field.clear()
        field.send_keys(text)

    def log_in(self, name):
        self.open("/")
        self.fill("#login-username", name)
        self.fill("#login-password", PASSWORD)
        self.find("#login-form button").click()
        self.wait(lambda: self.finds("#chat-list"), "the chat list shows")
        self.wait_live()

    def wait_live(self):
        self.wait(lambda: self.find("#connection").get_attribute("data-state") == "online", "the connection is live")

    def messages(self):
        """[(seq or None, status, text)] of the chat page's messages, in page order."""
        return self.js("""
            return [...document.querySelectorAll('#message-list .message')].map((node) => [
              node.dataset.seq ? Number(node.dataset.seq) : null, node.dataset.status,
              node.querySelector('.text').textContent]);
        """)

    def timeline(self):
        """The chat page's list in order: message texts, and membership lines as "· <line>"."""
        return self.js("""
            return [...document.querySelectorAll('#message-list > li')]
              .map((node) => node.classList.contains('membership-line') ? `· ${node.textContent}`
                : node.querySelector('.text')?.textContent ?? null)
              .filter((text) => text !== null);
        """)

    def message(self, text):
        """(seq, status) of the message with exactly this text; None when it is not shown."""
        found = [(seq, status) for seq, status, shown in self.messages() if shown == text]
        assert len(found) <= 1, f"{self.label}: {text!r} is shown {len(found)} times"
        return found[0] if found else None

    def send(self, text):
        box = self.find("#composer-text")
        box.send_keys(text)
        box.send_keys(Keys.ENTER)

    def expect_no_alert(self):
        try:
            alert = self.driver.switch_to.alert
            raise AssertionError(f"{self.label}: a script ran and opened an alert: {alert.text}")
        except NoAlertPresentException:
            pass

    def collect_console(self):
        self.console += self.driver.get_log("browser")

    def screenshot(self, directory, name):
        # Let the page paint what the test just changed (scrolling, a resize) first.
        self.driver.execute_async_script("requestAnimationFrame(() => requestAnimationFrame(arguments[0]))")
        path = os.path.join(directory, f"{name}.png")
        self.driver.save_screenshot(path)
        return path

    def quit(self):
        try:
            self.collect_console()
        finally:
            self.driver.quit()


def step(text):
    print(f"  - {text}", flush=True)


def run(server, alice, bob, artifacts):
    server.register("Bob")
    server.register("Carol")

    step("Alice registers through the page and lands on her (empty) chat list")
    alice.open("/")
    alice.fill("#register-name", "Alice")
    alice.fill("#register-email", "alice@example.com")
    alice.fill("#register-password", PASSWORD)
    alice.find("#register-form button").click()
    alice.wait(lambda: alice.finds("#chat-list") and alice.find("#me").text == "Alice", "her chat list shows")
    alice.wait_live()

    step("A failed log-in shows the API's error inline")
    bob.open("/")
    bob.fill("#login-username", "Bob")
    bob.fill("#login-password", "wrong password")
    bob.find("#login-form button").click()
    bob.wait(lambda: bob.find("#login-error").is_displayed() and bob.find("#login-error").text, "the error shows")

    step("An empty log-in says what is missing; turning to the other form clears the messages")
    bob.fill("#login-username", "")
    bob.fill("#login-password", "")
    bob.find("#login-form button").click()
    bob.wait(lambda: bob.find("#login-username-error").text == "Enter your name or email.", "the name is asked for")
    assert bob.find("#login-password-error").text == "Enter your password."
    assert not bob.find("#login-error").is_displayed(), "the earlier failure still shows"
    bob.find("#register-name").click()
    bob.wait(lambda: not bob.find("#login-username-error").is_displayed(), "the log-in messages clear")

    step("Registration states the server's rules up front and checks them before sending, in words")
    assert "up to 50 characters" in bob.find("#register-name-hint").text
    assert bob.find("#register-password-hint").text == "At least 8 characters."
    bob.fill("#register-name", "N" * 51)
    bob.fill("#register-email", "not an email")
    bob.fill("#register-password", "short")
    bob.find("#register-form button").click()
    bob.wait(lambda: bob.find("#register-name-error").text == "At most 50 characters: this one has 51.",
             "the name's length is refused")
    assert bob.find("#register-email-error").text == "Enter an email address like name@example.com."
    assert bob.find("#register-password-error").text == "Too short: a password needs at least 8 characters."
    assert not bob.find("#register-error").is_displayed(), "the form was sent to the server"
    bob.find("#register-name").send_keys(Keys.BACKSPACE)
    bob.wait(lambda: not bob.find("#register-name-error").is_displayed(), "a corrected field's message goes")
    bob.screenshot(artifacts, "bob-form-rules")

    step("Alice creates a group and adds Bob by searching his name")
    alice.fill("#create-name", "Weekend plans")
    alice.find("#create-form button").click()
    alice.wait(lambda: "/chat/" in alice.driver.current_url, "the chat page opens")
    chat_path = alice.driver.current_url.removeprefix(server.base)
    alice.wait(lambda: alice.find("#chat-name").text == "Weekend plans", "the chat name shows")
    alice.wait_live()
    alice.fill("#member-search", "Bo")
    alice.wait(lambda: alice.finds('[aria-label="Add Bob"]'), "Bob is offered")
    alice.find('[aria-label="Add Bob"]').click()
    alice.wait(lambda: "Bob" in [n.text for n in alice.finds(".member-name")], "Bob is a member")

    step("Bob logs in; Alice's first message appears live on his list, with an unread badge")
    bob.log_in("Bob")
    bob.wait(lambda: "Weekend plans" in [n.text for n in bob.finds(".chat-name")], "the new chat is listed")
    alice.send("Hi Bob! Saturday at ten?")
    alice.wait(lambda: (alice.message("Hi Bob! Saturday at ten?") or (0, ""))[1] in ("sent", "read"), "it is sent")
    bob.wait(lambda: [n.text for n in bob.finds(".badge")] == ["1"], "the unread badge shows 1")
    assert bob.find(".chat-last").text == "Alice: Hi Bob! Saturday at ten?", bob.find(".chat-last").text

    step("Bob opens the chat: the unread divider sits above the message; Alice's ticks turn to read")
    bob.find(".chat-item").click()
    bob.wait(lambda: bob.message("Hi Bob! Saturday at ten?"), "the message shows")
    bob.wait_live()
    divider_next = bob.js("return document.querySelector('.unread-divider')?.nextElementSibling?.textContent")
    assert divider_next and "Hi Bob!" in divider_next, f"unread divider misplaced: {divider_next!r}"
    alice.wait(lambda: alice.message("Hi Bob! Saturday at ten?")[1] == "read", "the message shows as read")
    assert alice.find(".message.mine .ticks").text == "✓✓"

    step("Bob types: Alice sees it; his two-line reply (Shift+Enter) arrives in order")
    bob.find("#composer-text").send_keys("Sounds good")
    alice.wait(lambda: alice.find("#typing").text == "Bob is typing…", "the typing notice shows")
    ActionChains(bob.driver).key_down(Keys.SHIFT).send_keys(Keys.ENTER).key_up(Keys.SHIFT).perform()
    bob.find("#composer-text").send_keys("I'll bring coffee", Keys.ENTER)
    reply = "Sounds good\nI'll bring coffee"
    alice.wait(lambda: alice.message(reply), "the reply shows")
    assert alice.message(reply)[0] == alice.message("Hi Bob! Saturday at ten?")[0] + 1
    alice.wait(lambda: alice.find("#typing").text == "", "the typing notice clears")
    bob.wait(lambda: bob.message(reply) and bob.message(reply)[1] == "read", "Bob's reply is read by Alice")

    step("Bob messages Alice from the member list: their private chat opens, the same one each time")
    bob.find('[aria-label="Message Alice"]').click()
    bob.wait(lambda: bob.find("#chat-name").text == "Bob & Alice", "the private chat opens")
    private_path = bob.driver.current_url.removeprefix(server.base)
    assert private_path != chat_path
    bob.wait(lambda: bob.find("#members-note").is_displayed(), "the page says why no one can be added")
    assert not bob.find("#add-member").is_displayed()
    assert not bob.finds('[aria-label="Message Alice"]'), "a private chat offers to message its own member"
    bob.screenshot(artifacts, "bob-private")
    bob.open(chat_path)
    bob.wait_live()
    # Presence frames re-render the member list, so click whichever button is there now.
    bob.wait(lambda: bob.js("""const button = document.querySelector('[aria-label="Message Alice"]');
                               button?.click(); return Boolean(button);"""), "the group's member list shows")
    bob.wait(lambda: bob.driver.current_url.removeprefix(server.base) == private_path, "the same private chat opens")
    bob.open(chat_path)
    bob.wait(lambda: bob.message(reply), "the group shows again")
    bob.wait_live()

    step("Markup in a message is shown as text and runs nothing")
    bob.send(XSS)
    alice.wait(lambda: alice.message(XSS), "the message shows as text")
    for window in (alice, bob):
        assert not window.finds("#message-list img"), f"{window.label}: the markup became an element"
        window.expect_no_alert()

    step("Addresses become links built as elements; javascript: and look-alikes stay text")
    links = ("Links: https://example.com/a?b=1, www.example.org (and https://en.wikipedia.org/wiki/Swift_(language)) "
             "mailto:bob@example.com. Not links: javascript:alert(1) JaVaScRiPt:alert(2) data:text/html,hi "
             "xhttps://evil.example mailto:javascript:alert(3)")
    bob.send(links)
    alice.wait(lambda: alice.message(links), "the message with links shows, its text unchanged")
    anchors = alice.js("""return [...document.querySelectorAll('#message-list .text a')].map((a) =>
                              [a.getAttribute('href'), a.textContent, a.rel, a.target]);""")
    assert anchors == [
        ["https://example.com/a?b=1", "https://example.com/a?b=1", "noopener noreferrer", "_blank"],
        ["https://www.example.org/", "www.example.org", "noopener noreferrer", "_blank"],
        ["https://en.wikipedia.org/wiki/Swift_(language)", "https://en.wikipedia.org/wiki/Swift_(language)",
         "noopener noreferrer", "_blank"],
        ["mailto:bob@example.com", "mailto:bob@example.com", "noopener noreferrer", "_blank"],
    ], anchors
    alice.expect_no_alert()

    step("A text over the limit is never cut: a counter shows, and the page says why it is not sent")
    before = len(alice.messages())
    alice.js("""const box = document.getElementById('composer-text');
                box.value = 'x'.repeat(5000); box.dispatchEvent(new Event('input'));""")
    alice.wait(lambda: alice.find("#composer-count").text == "5,000 / 4,096", "the counter shows the length")
    assert "over" in alice.find("#composer-count").get_attribute("class")
    alice.find("#composer-text").send_keys(Keys.ENTER)
    alice.wait(lambda: alice.find("#composer-error").is_displayed(), "the page says it is not sent")
    assert "5,000 characters" in alice.find("#composer-error").text and "Shorten it by 904" in \
        alice.find("#composer-error").text
    assert alice.js("return document.getElementById('composer-text').value.length") == 5000, "the text was cut"
    assert len(alice.messages()) == before, "a message over the limit was sent"
    alice.screenshot(artifacts, "alice-too-long")
    longest = "y" * 4096
    alice.js("""const box = document.getElementById('composer-text');
                box.value = arguments[0]; box.dispatchEvent(new Event('input'));""", longest)
    alice.wait(lambda: not alice.find("#composer-error").is_displayed(), "the refusal goes once it fits")
    assert "over" not in alice.find("#composer-count").get_attribute("class")
    alice.find("#composer-text").send_keys(Keys.ENTER)
    bob.wait(lambda: bob.message(longest), "the longest message arrives whole")
    assert not alice.find("#composer-count").is_displayed(), "the counter stays after sending"

    step("Message text and names take their direction from their own text")
    bob.send("مرحبا بالجميع")
    alice.wait(lambda: alice.message("مرحبا بالجميع"), "the Arabic message shows")
    assert alice.js("""const selector = '#message-list .text, #message-list .sender, #chat-name, .member-name';
                       return [...document.querySelectorAll(selector)].every((node) => node.dir === 'auto')""")

    step(f"Alice sends {BURST} messages in one burst: they are stored in the order typed, once each")
    # Through the page's own composer, in one go: far faster than the rate limit, so most sends
    # are refused with rate_limited and repeated.
    alice.js("""
        const [text, composer] = [document.getElementById('composer-text'), document.getElementById('composer')];
        for (let number = 1; number <= arguments[0]; number++) {
          text.value = `Burst message ${number}`;
          composer.requestSubmit();
        }""", BURST)
    typed = [f"Burst message {number}" for number in range(1, BURST + 1)]
    for window in (alice, bob):
        window.wait(lambda w=window: w.message(typed[-1]) and w.message(typed[-1])[1] in ("sent", "read", "received"),
                    f"{typed[-1]} is stored", seconds=BURST_WAIT_SECONDS)
        shown = window.messages()
        seqs = [seq for seq, _, _ in shown]
        assert seqs == list(range(1, len(seqs) + 1)), f"{window.label}: seqs out of order: {seqs}"
        stored = [text for _, _, text in shown if text.startswith("Burst message ")]
        assert stored == typed, f"{window.label}: stored out of the typed order: {stored}"
    history = alice.js("""
        return (async () => {
          const chat = location.pathname.split('/').pop();
          const page = async (after) => (await fetch(`/history/${chat}?after_seq=${after}&limit=100`)).json();
          const pages = [await page(0)];
          while (pages.at(-1).length === 100) pages.push(await page(pages.at(-1).at(-1).seq));
          return pages.flat().map((message) => message.text);
        })();""")
    assert [text for text in history if text.startswith("Burst message ")] == typed, \
        "the server's history holds the burst out of the typed order"
    alice.screenshot(artifacts, "alice-chat")
    bob.screenshot(artifacts, "bob-chat")

    step("Replies, edits and deletions, from the keyboard, in both windows; Bob, offline, gets an edit when back")
    check_message_changes(alice, bob, artifacts)

    step("The server restarts while Alice sends: the message waits as pending and is sent once")
    server.stop()
    for window in (alice, bob):
        window.wait(lambda w=window: w.find("#connection").get_attribute("data-state") == "waiting",
                    "the page shows it is offline")
    alice.send("Sent while the server was down")
    assert alice.message("Sent while the server was down") == (None, "pending")
    alice.screenshot(artifacts, "alice-offline")
    server.start()
    alice.wait(lambda: (alice.message("Sent while the server was down") or (None,))[0] is not None,
               "the pending message is acknowledged after reconnecting")
    bob.wait(lambda: bob.message("Sent while the server was down"), "Bob gets it after reconnecting")
    bob.wait_live()
    alice.wait_live()
    total = alice.message("Sent while the server was down")[0]
    for window in (alice, bob):
        seqs = [seq for seq, _, _ in window.messages()]
        assert seqs == list(range(1, total + 1)), f"{window.label}: gap or repeat after reconnecting: {seqs}"

    step("The database is restored from a backup: both pages reload and show the restored chat")
    backup = os.path.join(server.workdir, "backup.sqlite")
    server.command("database", "backup", backup)
    alice.send("Lost in the restore")
    alice.wait(lambda: (alice.message("Lost in the restore") or (None,))[0] is not None, "it is stored")
    bob.wait(lambda: bob.message("Lost in the restore"), "Bob has it")
    for window in (alice, bob):
        window.js("window.beforeRestore = true")
    server.stop()
    server.command("database", "restore", backup)
    server.start()
    for window in (alice, bob):
        window.wait(lambda w=window: w.js("return window.beforeRestore === undefined"),
                    "the page reloads when it sees the new generation")
        window.wait(lambda w=window: w.message("Sent while the server was down"), "the restored chat shows")
        assert not window.message("Lost in the restore"), f"{window.label}: shows a message the restore lost"
        window.wait_live()
    alice.send("Sent after the restore")
    alice.wait(lambda: (alice.message("Sent after the restore") or (None,))[0] == total + 1,
               "it takes the seq the lost message had")
    bob.wait(lambda: bob.message("Sent after the restore"), "Bob gets it, not skipped as a repeat")
    for window in (alice, bob):
        seqs = [seq for seq, _, _ in window.messages()]
        # A reloaded page shows the latest pages: consecutive seqs up to the new message.
        assert seqs and seqs == list(range(seqs[0], total + 2)), f"{window.label}: gap or repeat after the restore: {seqs}"

    step("Bob searches from his chat list, from the keyboard: the chat opens at the message found, "
         "with the history around it, and newer pages load as he scrolls down to the end")
    check_search(bob, total + 1, artifacts)

    step("Alice adds Carol; Carol logs in in the second window and sees the whole history")
    alice.fill("#member-search", "Car")
    alice.wait(lambda: alice.finds('[aria-label="Add Carol"]'), "Carol is offered")
    alice.find('[aria-label="Add Carol"]').click()
    alice.wait(lambda: "Carol" in [n.text for n in alice.finds(".member-name")], "Carol is a member")
    bob.open("/")
    bob.wait(lambda: bob.finds("#logout"), "Bob's chat list shows")
    bob.find("#logout").click()
    bob.wait(lambda: bob.finds("#login-form"), "Bob is logged out")

    step("In a group, a message's ticks say who has read it")
    ticks_title = 'return document.querySelector(`[data-seq="${arguments[0]}"] .ticks`).title'
    alice.wait(lambda: alice.js(ticks_title, total + 1) == "Read by Bob, Carol",
               "the last message before Carol joined counts as read by both")
    alice.send("Welcome, Carol!")
    alice.wait(lambda: (alice.message("Welcome, Carol!") or (None,))[0] is not None, "the welcome is stored")
    total = alice.message("Welcome, Carol!")[0]
    alice.wait(lambda: alice.js(ticks_title, total) == "Sent; nobody has read it yet", "nobody has read it")
    bob.log_in("Carol")
    carol = bob
    carol.label = "carol"
    carol.find(".chat-item").click()
    carol.wait(lambda: carol.message("Welcome, Carol!"), "the latest message shows")
    carol.wait_live()
    alice.wait(lambda: alice.js(ticks_title, total) == "Read by Carol; not yet by Bob", "Carol has read it, Bob not")
    alice.wait(lambda: alice.find('.member[data-user-id] .member-name') and any(
        node.find_element(By.CSS_SELECTOR, ".member-name").text == "Carol"
        and node.get_attribute("data-online") == "true" for node in alice.finds(".member")), "Carol shows online")

    step("Carol scrolls up: older pages load in place, without gaps, repeats or jumps")
    while carol.find("#history-status").text != "This is the start of the chat.":
        shown = len(carol.messages())
        anchor_seq, anchor_top = carol.js("""
            document.getElementById('messages').scrollTop = 0;
            const first = document.querySelector('#message-list .message');
            return [Number(first.dataset.seq), first.querySelector('.bubble').getBoundingClientRect().top];""")
        carol.wait(lambda: len(carol.messages()) > shown or carol.find("#history-status").text ==
                   "This is the start of the chat.", "an older page loads")
        moved = carol.js("""return document.querySelector(`[data-seq="${arguments[0]}"] .bubble`)
                              .getBoundingClientRect().top - arguments[1];""", anchor_seq, anchor_top)
        assert abs(moved) < 2, f"the list jumped by {moved}px when older messages loaded"
    seqs = [seq for seq, _, _ in carol.messages()]
    assert seqs == list(range(1, total + 1)), f"carol: history has gaps or repeats: {seqs}"
    assert carol.messages()[0][2] == "Hi Bob! Saturday at ten?"
    separators = carol.js("""return [...document.querySelectorAll('.day-separator')].map((node) =>
                                 [Number(node.closest('.message').dataset.seq), node.textContent])""")
    assert separators == [[1, "Today"]], f"carol: day separators after paging back: {separators}"
    labels = carol.driver.execute_async_script("""
        const done = arguments[arguments.length - 1];
        import('/static/common.js').then(({ dayLabel }) => {
          const now = new Date(2026, 11, 4, 9, 30);
          done([new Date(2026, 11, 4, 0, 5), new Date(2026, 11, 3, 23, 59), new Date(2026, 11, 1, 12),
                new Date(2026, 10, 25, 12), new Date(2025, 11, 31, 12)].map((day) => dayLabel(day.toISOString(), now)));
        });""")
    assert labels == ["Today", "Yesterday", "Tuesday", "November 25", "December 31, 2025"], labels
    carol.js("document.getElementById('messages').scrollTop = 0")
    carol.screenshot(artifacts, "carol-history")
    alice.screenshot(artifacts, "alice-final")

    step("Membership changes show among the messages, where they happened")
    timeline = carol.timeline()
    assert timeline[0] == "· Alice added Bob", f"carol: the start of the chat: {timeline[:3]}"
    assert timeline[timeline.index("Welcome, Carol!") - 1] == "· Alice added you", timeline[-4:]

    step("A phone-width window: the member list folds behind a button")
    carol.driver.set_window_size(390, 844)
    carol.js("document.getElementById('messages').scrollTop = 1e9")
    toggle = carol.find("#members-toggle")
    assert toggle.is_displayed() and not carol.find("#members-panel").is_displayed()
    carol.screenshot(artifacts, "carol-phone")
    toggle.click()
    carol.wait(lambda: carol.find("#members-panel").is_displayed(), "the member panel opens")
    carol.screenshot(artifacts, "carol-phone-members")

    step("A wide window keeps the conversation to one reading width")
    # Since the restore reloaded her page, Alice's loaded messages are all her own: Carol replies,
    # so that both sides show.
    carol.send("A reply from Carol")
    alice.wait(lambda: alice.message("A reply from Carol"), "Carol's reply shows on Alice's page")
    alice.driver.set_window_size(1600, 900)
    alice.js("document.getElementById('messages').scrollTop = 1e9")
    mine, theirs = alice.js("""
        const sides = (side) => [...document.querySelectorAll(`#message-list .message.${side} .bubble`)]
          .map((bubble) => bubble.getBoundingClientRect());
        return [Math.max(...sides('mine').map((box) => box.right)), Math.min(...sides('theirs').map((box) => box.left))];""")
    assert mine - theirs <= 52 * 16, f"the two sides are {mine - theirs:.0f}px apart at 1600 px"
    alice.screenshot(artifacts, "alice-wide")

    step("Alice removes Carol after confirming: Carol's page says so plainly, with no composer left")
    alice.find('[aria-label="Remove Carol"]').click()
    alice.wait(lambda: alice.finds('[aria-label="Keep Carol"]'), "the removal asks for confirmation")
    alice.find('[aria-label="Keep Carol"]').click()
    alice.wait(lambda: alice.finds('[aria-label="Remove Carol"]'), "No keeps Carol")
    assert "Carol" in [node.text for node in alice.finds(".member-name")]
    alice.find('[aria-label="Remove Carol"]').click()
    alice.wait(lambda: alice.finds('[aria-label="Yes, remove Carol"]'), "the removal asks again")
    alice.find('[aria-label="Yes, remove Carol"]').click()
    alice.wait(lambda: "Carol" not in [node.text for node in alice.finds(".member-name")], "Carol is gone from the list")
    carol.wait(lambda: carol.find("#chat-banner").is_displayed(), "Carol's page says she was removed")
    assert carol.find("#chat-banner").text.startswith("You were removed from this chat."), carol.find("#chat-banner").text
    assert not carol.find("#composer").is_displayed(), "the composer is still there"
    assert carol.find("#connection").get_attribute("data-state") == "left"
    assert carol.find("#connection").text == "Not a member"
    assert "Carol" not in [node.get_attribute("textContent") for node in carol.finds(".member-name")]
    assert not carol.finds('.member[data-online="true"]'), "presence dots stay green after the removal"
    assert carol.message("Welcome, Carol!"), "the history went with the removal"
    carol.screenshot(artifacts, "carol-removed")

    step("The others see who removed whom among the messages, also after a reload")
    alice.wait(lambda: alice.timeline()[-1] == "· You removed Carol", "Alice's page shows the removal")
    carol.open("/")
    carol.wait(lambda: carol.finds("#logout"), "Carol's chat list shows")
    carol.find("#logout").click()
    carol.wait(lambda: carol.finds("#login-form"), "Carol is logged out")
    bob = carol
    bob.label = "bob"
    bob.log_in("Bob")
    bob.open(chat_path)
    bob.wait(lambda: bob.message("Welcome, Carol!"), "the latest message shows")
    timeline = bob.timeline()
    assert timeline[-1] == "· Alice removed Carol", f"bob: the end of the chat: {timeline[-3:]}"
    assert timeline[timeline.index("Welcome, Carol!") - 1] == "· Alice added Carol", timeline[-4:]
    bob.screenshot(artifacts, "bob-membership-lines")

    step("Alice leaves after confirming: her page goes to her chat list, and Bob, who joined next, leads the chat")
    alice.open(chat_path)
    alice.wait(lambda: alice.message("Welcome, Carol!"), "Alice's chat shows again")
    alice.find("#leave-button").click()
    alice.wait(lambda: alice.finds('[aria-label="Stay in this chat"]'), "leaving asks for confirmation")
    alice.find('[aria-label="Stay in this chat"]').click()
    alice.wait(lambda: alice.finds("#leave-button"), "No stays")
    alice.find("#leave-button").click()
    alice.wait(lambda: alice.finds('[aria-label="Yes, leave this chat"]'), "leaving asks again")
    alice.find('[aria-label="Yes, leave this chat"]').click()
    alice.wait(lambda: alice.driver.current_url == server.base + "/" and alice.finds("#chat-list"),
               "Alice is back at her chat list")
    bob.driver.set_window_size(1200, 800)  # the member panel shows beside the conversation
    bob.wait(lambda: "Alice" not in [node.get_attribute("textContent") for node in bob.finds(".member-name")],
             "Alice is gone from Bob's list")
    creators = """return [...document.querySelectorAll('.member')]
        .filter((member) => [...member.querySelectorAll('.tag')].some((tag) => tag.textContent === 'creator'))
        .map((member) => member.querySelector('.member-name').textContent)"""
    bob.wait(lambda: bob.js(creators) == ["Bob"], "Bob is the creator now")
    bob.wait(lambda: bob.find("#add-member").is_displayed(), "Bob can add members now")
    bob.wait(lambda: bob.timeline()[-1] == "· Alice left", "the chat shows that Alice left")
    bob.screenshot(artifacts, "bob-after-alice-left")

    step("Bob changes his password on his chat list: refused with a wrong one, then his page stays logged in")
    bob.open("/")
    bob.wait(lambda: bob.finds("#chat-list"), "Bob's chat list shows")
    bob.wait_live()
    bob.find("#password-form button").click()
    bob.wait(lambda: bob.find("#current-password-error").is_displayed(), "an empty form says what is missing")
    bob.fill("#current-password", "not my password")
    bob.fill("#new-password", "a new good password")
    bob.find("#password-form button").click()
    bob.wait(lambda: bob.find("#password-error").is_displayed(), "a wrong current password is refused")
    bob.js("""window.connectionStates = [];
        const node = document.getElementById('connection');
        new MutationObserver(() => window.connectionStates.push(node.dataset.state))
          .observe(node, { attributes: true, attributeFilter: ['data-state'] });""")
    bob.fill("#current-password", PASSWORD)
    bob.fill("#new-password", "a new good password")
    bob.find("#password-form button").click()
    bob.wait(lambda: bob.find("#password-done").is_displayed(), "the change is confirmed")
    bob.wait(lambda: bob.js("""const states = window.connectionStates;
                               return states.includes('connecting') && states.at(-1) === 'online'"""),
             "the page's socket, closed with the old session, comes back with the new one")
    assert bob.driver.current_url == server.base + "/", bob.driver.current_url
    assert server.log_in_status("Bob", PASSWORD) == 401 and server.log_in_status("Bob", "a new good password") == 200
    bob.screenshot(artifacts, "bob-password-changed")

    step("An unknown address shows a page for people, not the API's JSON")
    alice.open("/no/such/page")
    alice.wait(lambda: alice.find("h1").text == "Page not found", "the not-found page shows")
    assert alice.find("a.button").get_attribute("href") == server.base + "/"
    alice.screenshot(artifacts, "alice-not-found")

    step("Alice's password changes elsewhere: her page lands on the log-in form, which says why")
    alice.open("/")
    alice.wait(lambda: alice.finds("#chat-list"), "her chat list shows")
    alice.wait_live()
    server.change_password("Alice", "another good password")
    alice.wait(lambda: alice.finds("#login-form") and "Your session ended" in alice.find("#login-error").text,
               "the log-in page says the session ended")
    assert alice.driver.current_url == server.base + "/", alice.driver.current_url
    alice.screenshot(artifacts, "alice-session-ended")

    step("/docs renders the whole API reference with every other host unreachable")
    with urllib.request.urlopen(f"{server.base}/openapi.json", timeout=10) as response:
        document = json.load(response)
    operations = sum(len(methods) for methods in document["paths"].values())
    offline = Window("offline", server.base, extra_arguments=["--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"])
    try:
        offline.open("/docs")
        offline.wait(lambda: len(offline.finds(".docs-operation")) == operations, f"all {operations} operations show")
        assert len(offline.finds(".docs-schema")) == len(document["components"]["schemas"])
        assert "POST /user" in offline.find("#docs-nav").text
        assert offline.find("#op-post-_user .docs-auth").text == "Public: no session needed."
        assert offline.js("""return performance.getEntriesByType('resource')
                                .every((entry) => entry.name.startsWith(location.origin))""")
        offline.screenshot(artifacts, "docs-offline")
        offline.collect_console()
        check_console([offline])
    finally:
        offline.quit()

    for window in (alice, bob):
        window.expect_no_alert()



def check_search(window, last_seq, artifacts):
    window.open("/")
    window.wait(lambda: window.finds("#chat-list .chat-item"), "the chat list shows")
    window.find("#search-text").send_keys("burst 7", Keys.ENTER)
    window.wait(lambda: len(window.finds(".search-hit")) == 1, "one message has both words")
    hit = window.find(".search-hit")
    assert [mark.text for mark in hit.find_elements(By.CSS_SELECTOR, "mark")] == ["Burst", "7"], hit.text
    assert "Weekend plans" in hit.text, hit.text
    window.screenshot(artifacts, f"{window.label}-search")
    window.js("arguments[0].focus()", hit)
    window.driver.switch_to.active_element.send_keys(Keys.ENTER)
    window.wait(lambda: "#seq=" in window.driver.current_url and window.message("Burst message 7"),
                "the chat opens at the message found")
    window.wait(lambda: window.js("return document.querySelector('.message.highlight .text')?.textContent")
                == "Burst message 7", "the message is highlighted")
    found = window.message("Burst message 7")[0]
    seqs = [seq for seq, _, _ in window.messages()]
    assert seqs == list(range(seqs[0], seqs[-1] + 1)) and seqs[0] < found < seqs[-1] < last_seq, \
        f"the history around it, not the chat's end: {seqs[0]}..{seqs[-1]} around {found}"
    assert window.find("#jump-latest").is_displayed(), "the page offers the chat's end"
    window.screenshot(artifacts, f"{window.label}-search-opened")

    def scrolled_to_end():
        window.js("const list = document.getElementById('messages'); list.scrollTop = list.scrollHeight")
        return not window.find("#jump-latest").is_displayed()
    window.wait(scrolled_to_end, "scrolling down loads newer pages up to the chat's end")
    seqs = [seq for seq, _, _ in window.messages()]
    assert seqs == list(range(seqs[0], last_seq + 1)), f"no gap on the way down: {seqs[0]}..{seqs[-1]}"


# The message whose text is exactly arguments[0], on the chat page.
FIND_MESSAGE = """const node = [...document.querySelectorAll('#message-list .message')]
    .find((candidate) => candidate.querySelector('.text').textContent === arguments[0]);"""


def press(window, text, action):
    """Focuses the action button (Reply, Edit, Delete) of the message with `text` and presses Enter."""
    window.js(FIND_MESSAGE + f"node.querySelector('.actions button[aria-label^=\"{action} \"]').focus();", text)
    window.driver.switch_to.active_element.send_keys(Keys.ENTER)


def actions(window, text):
    return window.js(FIND_MESSAGE + "return [...node.querySelectorAll('.actions button')].map((b) => b.textContent);",
                     text)


def quote(window, text):
    return window.js(FIND_MESSAGE + "return node?.querySelector('.quote')?.textContent ?? null;", text)


def edited(window, text):
    return window.js(FIND_MESSAGE + "return Boolean(node?.querySelector('.edited'));", text)


def set_offline(window, offline):
    window.driver.execute_cdp_cmd("Network.enable", {})
    window.driver.execute_cdp_cmd("Network.emulateNetworkConditions", {
        "offline": offline, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1})


def check_message_changes(alice, bob, artifacts):
    bob.send("Which day suits you?")
    alice.wait(lambda: alice.message("Which day suits you?"), "Alice has Bob's question")
    assert actions(bob, "Which day suits you?") == ["Reply", "Edit", "Delete"], "the sender edits and deletes"
    assert actions(alice, "Which day suits you?") == ["Reply", "Delete"], "the group's creator deletes any message"

    press(alice, "Which day suits you?", "Reply")
    alice.wait(lambda: alice.find("#reply-bar").is_displayed(), "the composer shows what it answers")
    assert alice.find("#reply-quote").text == "Bob: Which day suits you?"
    assert alice.driver.switch_to.active_element == alice.find("#composer-text"), "typing goes on in the composer"
    alice.send("Saturday")
    for window, author in ((alice, "Bob"), (bob, "You")):
        window.wait(lambda w=window, a=author: quote(w, "Saturday") == f"{a}: Which day suits you?",
                    "the reply quotes it")
    assert not alice.find("#reply-bar").is_displayed(), "the reply bar goes once sent"

    press(alice, "Saturday", "Edit")
    alice.wait(lambda: alice.finds(".edit-text"), "the message turns into a form")
    box = alice.driver.switch_to.active_element
    box.send_keys(Keys.CONTROL, "a")
    box.send_keys("Saturday morning", Keys.ENTER)
    for window in (alice, bob):
        window.wait(lambda w=window: w.message("Saturday morning") and edited(w, "Saturday morning"),
                    "the edit shows, marked (edited)")
    assert not alice.message("Saturday") and not bob.message("Saturday"), "the old text is gone"

    set_offline(bob, True)
    bob.wait(lambda: bob.find("#connection").get_attribute("data-state") != "online", "Bob's page is offline")
    press(alice, "Saturday morning", "Edit")
    alice.wait(lambda: alice.finds(".edit-text"), "the form opens again")
    box = alice.driver.switch_to.active_element
    box.send_keys(Keys.CONTROL, "a")
    box.send_keys("Saturday at ten", Keys.ENTER)
    alice.wait(lambda: alice.message("Saturday at ten"), "Alice's edit is stored")
    bob.screenshot(artifacts, "bob-offline-before-edit")
    assert bob.message("Saturday morning"), "offline, Bob still has the old text"
    set_offline(bob, False)
    bob.wait_live()
    bob.wait(lambda: bob.message("Saturday at ten") and edited(bob, "Saturday at ten"),
             "back online, Bob's page catches up with the edit (resume with after_update)")

    press(alice, "Which day suits you?", "Delete")
    alice.wait(lambda: alice.finds('[aria-label="Yes, delete this message"]'), "deleting asks first")
    alice.find('[aria-label="Yes, delete this message"]').click()
    for window, author in ((alice, "Bob"), (bob, "You")):
        window.wait(lambda w=window: w.message("Message deleted") and not w.message("Which day suits you?"),
                    "a placeholder takes the deleted message's place")
        window.wait(lambda w=window, a=author: quote(w, "Saturday at ten") == f"{a}: Message deleted",
                    "the reply's quote says the original is gone")
        assert actions(window, "Message deleted") == [], "a deleted message offers nothing"
    seqs = [seq for seq, _, _ in bob.messages()]
    assert seqs == sorted(seqs) and len(seqs) == len(set(seqs)), f"the deletion left the order alone: {seqs}"
    alice.screenshot(artifacts, "alice-replies-edits-deletions")
    bob.screenshot(artifacts, "bob-replies-edits-deletions")

def check_console(windows):
    """No CSP violation and no uncaught script error in either window."""
    problems = []
    for window in windows:
        for entry in window.console:
            text = entry.get("message", "")
            if "Content Security Policy" in text or "Uncaught" in text:
                problems.append(f"{window.label}: {text}")
    assert not problems, "browser console:\n" + "\n".join(problems)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", required=True, help="the chat-server binary")
    parser.add_argument("--artifacts", default=".build/browser-test", help="where screenshots go")
    arguments = parser.parse_args()
    artifacts = os.path.abspath(arguments.artifacts)
    os.makedirs(artifacts, exist_ok=True)

    with tempfile.TemporaryDirectory() as workdir:
        server = Server(os.path.abspath(arguments.server), workdir)
        server.start()
        windows = []
        try:
            windows = [Window("alice", server.base), Window("bob", server.base)]
            print(f"web client test against {server.base}")
            run(server, *windows, artifacts)
            for window in windows:
                window.collect_console()
            check_console(windows)
        except BaseException:
            for window in windows:
                try:
                    print(f"  failure screenshot: {window.screenshot(artifacts, f'failure-{window.label}')}")
                except Exception:
                    pass
            with open(os.path.join(workdir, "server.log"), errors="replace") as log:
                print("server log (last lines):\n" + "".join(log.readlines()[-40:]), file=sys.stderr)
            raise
        finally:
            for window in windows:
                window.quit()
            server.stop()
    print(f"web client test passed; screenshots in {artifacts}")


if __name__ == "__main__":
    main()
