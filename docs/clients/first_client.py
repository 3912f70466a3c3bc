#!/usr/bin/env python3
"""A first chat client in Python, with `requests` for the REST API and `websockets` for the
live connection: docs/clients/README.md walks through it.

It logs in, connects, sends messages, prints the ones it receives, marks them read, drops its
connection on purpose once and resumes without losing anything, and backs off whenever the
server refuses. CI runs it against the release binary (scripts/client-tutorials).

    python3 -m pip install requests websockets
    python3 first_client.py --url http://127.0.0.1:8000 --user Arina --password 12345 \\
        --chat "Demo group" --send 3 --expect 3
"""

import argparse
import asyncio
import json
import random
import sys
import uuid

import requests
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus


class SessionEnded(Exception):
    """The token is no longer valid (logout, password change, expiry): log in again."""


class Client:
    def __init__(self, url, user, password, chat_name):
        self.url = url.rstrip("/")
        self.user, self.password, self.chat_name = user, password, chat_name
        self.token = None
        self.me = None
        self.chat = None  # the chat's id
        self.generation = None  # the database generation our positions belong to
        self.last_seq = None  # the last seq we have of the chat: where a resume starts
        self.outbox = []  # send frames in the order typed; the first is on the wire until its ack
        self.retries = set()  # resends waiting for the pause the server asked for
        self.received = []  # (seq, sender_id, text) of other people's messages
        self.attempt = 0  # reconnect attempts since the last ready

    # ---- REST ---------------------------------------------------------------------------

    def api(self, method, path, **kwargs):
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        response = requests.request(method, self.url + path, headers=headers, timeout=10, **kwargs)
        if response.status_code == 401 and self.token:
            raise SessionEnded()
        if response.status_code >= 400:
            error = response.json()["error"]  # every error has this one shape
            raise RuntimeError(f"{method} {path}: {response.status_code} {error['code']}: {error['message']}")
        return response.json()

    def log_in(self):
        self.token = None
        # An OAuth2 password grant: a form, not JSON.
        body = {"grant_type": "password", "username": self.user, "password": self.password}
        self.token = self.api("POST", "/auth/login", data=body)["access_token"]
        self.me = self.api("GET", "/users/me")
        chats = self.api("GET", "/chats")
        self.chat = next(chat["id"] for chat in chats if chat["name"] == self.chat_name)

    # ---- WebSocket ----------------------------------------------------------------------

    async def run(self, send_count, expect, start_after):
        await asyncio.to_thread(self.log_in)
        self.last_seq = start_after
        self.outbox = [
            {"type": "send", "chat_id": None, "client_id": str(uuid.uuid4()), "text": f"hello {n} from {self.user} (Python)"}
            for n in range(1, send_count + 1)
        ]
        dropped = False
        while True:
            try:
                ws_url = self.url.replace("http", "ws", 1) + "/ws"
                async with connect(ws_url, additional_headers={"Authorization": f"Bearer {self.token}"}) as socket:
                    await self.follow(socket, json.loads(await socket.recv()))
                    async for text in socket:
                        await self.handle(socket, json.loads(text))
                        if self.received and not dropped:
                            dropped = True  # show that a dropped connection loses nothing
                            print("-- dropping the connection on purpose")
                            socket.transport.abort()
                        if len(self.received) >= expect and not self.outbox:
                            return
            except InvalidStatus as refusal:  # the handshake was refused with an HTTP status
                status = refusal.response.status_code
                if status == 401:
                    await asyncio.to_thread(self.log_in)
                    continue
                retry_after = refusal.response.headers.get("Retry-After")
                await self.back_off(f"handshake refused with {status}", float(retry_after) if retry_after else None)
            except ConnectionClosed as closed:
                code = closed.rcvd.code if closed.rcvd else None
                if code == 1008:  # the session ended: log in again
                    await asyncio.to_thread(self.log_in)
                elif code == 4001:  # we read too slowly: reconnect at once, then resume
                    continue
                else:  # 1001 shutdown, 1011 server error, 1013 try later, or a dropped network
                    await self.back_off(f"connection closed ({code})")
            except OSError as error:
                await self.back_off(f"cannot connect: {error}")

    async def back_off(self, why, at_least=None):
        """Exponential backoff with jitter: min(30 s, 0.5 s × 2^attempt) × [0.5, 1)."""
        delay = min(30.0, 0.5 * 2**self.attempt) * (0.5 + random.random() / 2)
        delay = max(delay, at_least or 0)
        self.attempt += 1
        print(f"-- {why}; reconnecting in {delay:.1f} s")
        await asyncio.sleep(delay)

    async def follow(self, socket, ready):
        assert ready["type"] == "ready"
        self.attempt = 0
        if self.generation and ready["generation"] != self.generation:
            # The database was restored from a backup: our seqs now name other messages.
            print("-- the database was restored: reading the chat again")
            self.last_seq = 0
        self.generation = ready["generation"]
        chat = next(chat for chat in ready["chats"] if chat["id"] == self.chat)
        if self.last_seq is None:
            self.last_seq = chat["last_seq"]  # a first start: only new messages
        elif chat["last_seq"] > self.last_seq:
            # Missed messages come as `message` frames, then `resumed`, then live ones.
            # (More than `resume_limit` missed: read GET /history first; not needed here.)
            await socket.send(json.dumps({"type": "resume", "chat_id": self.chat, "after_seq": self.last_seq}))
        await self.send_next(socket)  # unanswered, it goes again with its client_id: stored once

    async def send_next(self, socket):
        """One send on the wire at a time keeps the messages in the order typed."""
        if self.outbox:
            self.outbox[0]["chat_id"] = self.chat
            await socket.send(json.dumps(self.outbox[0]))

    async def handle(self, socket, frame):
        kind = frame["type"]
        if kind in ("message", "ack"):
            message = frame["message"]
            if message["chat_id"] != self.chat:
                return
            mine = message["sender_id"] == self.me["id"]
            # Our send is stored: its ack, or (after a reconnect) the message itself.
            if mine and self.outbox and message["client_id"] == self.outbox[0]["client_id"]:
                self.outbox.pop(0)
                print(f"sent     #{message['seq']}: {message['text']}")
                await self.send_next(socket)
            if message["seq"] <= self.last_seq or frame.get("duplicate"):
                return  # a repeat of what we have, or of what a resume brings in its place
            self.last_seq = message["seq"]
            if not mine:
                self.received.append((message["seq"], message["sender_id"], message["text"]))
                print(f"received #{message['seq']}: {message['text']}")
                await socket.send(json.dumps({"type": "read", "chat_id": self.chat, "seq": message["seq"]}))
        elif kind == "resumed":
            print(f"-- resumed: caught up to #{frame['last_seq']}")
        elif kind == "error":
            await self.refused(socket, frame)

    async def refused(self, socket, frame):
        code = frame["code"]
        if code in ("rate_limited", "overloaded", "storage_unavailable") and self.outbox:
            # Nothing was stored: the same frame again after the pause the server asks for,
            # while this loop goes on reading.
            pause = frame.get("retry_after_ms", 1000)
            print(f"-- {code}: sending it again in {pause} ms")
            retry = asyncio.create_task(self.send_later(socket, pause / 1000))
            self.retries.add(retry)
            retry.add_done_callback(self.retries.discard)
        elif code == "resync_required":
            self.last_seq = 0  # restored behind our back: read the chat again
            await socket.send(json.dumps({"type": "resume", "chat_id": self.chat, "after_seq": 0}))
        else:
            raise RuntimeError(f"refused: {frame}")

    async def send_later(self, socket, seconds):
        await asyncio.sleep(seconds)
        try:
            await self.send_next(socket)
        except ConnectionClosed:
            pass  # the next connection sends it


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--user", required=True)
    parser.add_argument("--password", required=True)
    parser.add_argument("--chat", required=True, help="the chat's name")
    parser.add_argument("--send", type=int, default=1, help="how many messages to send")
    parser.add_argument("--expect", type=int, default=0, help="stop after this many messages from others")
    parser.add_argument("--after-seq", type=int, help="receive messages after this seq (default: new ones)")
    parser.add_argument("--timeout", type=float, default=60)
    options = parser.parse_args()
    client = Client(options.url, options.user, options.password, options.chat)
    try:
        asyncio.run(asyncio.wait_for(client.run(options.send, options.expect, options.after_seq), options.timeout))
    except TimeoutError:
        sys.exit(f"timed out: received {len(client.received)} of {options.expect}, {len(client.outbox)} unsent")
    print(f"done: sent {options.send}, received {len(client.received)}")


if __name__ == "__main__":
    main()
