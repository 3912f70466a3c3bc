#!/usr/bin/env python3
"""End-to-end test of the documented load-balanced setup: two chat-server nodes on one
throwaway PostgreSQL database behind nginx configured from deploy/nginx/chat.conf.

Through the proxy only: users register and log in with the session cookie; a cross-site
Origin is refused for REST and WebSocket alike; four WebSockets opened in a row with the
cookie land on both nodes (nginx's log says which), and a message sent on one reaches all
of them, as does a read marker; then chatsim's fanout runs through the proxy and its checker
must find nothing lost, repeated or out of order, and `chatsim verify`'s checks must pass.

Usage: nginx_test.py [--keep DIR]    (builds release binaries of chat-server and chatsim first)
Needs nginx (Debian's nginx-light; scripts/nginx-test installs it) and PostgreSQL's binaries.
"""

import argparse
import base64
import http.client
import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "scripts"))
from harness import ROOT, Postgres, Server, build, free_port, log, run, wait_until_ready  # noqa: E402

PASSWORD = "correct horse battery"
ENVIRONMENT = {
    "CHAT_ENV": "test",
    "CHAT_HOST": "127.0.0.1",
    "CHAT_LOG_LEVEL": "warning",
    "CHAT_JWT_SECRET": "nginx-test-secret-that-is-long-enough-for-hs256",
    "CHAT_BCRYPT_COST": "4",
    "CHAT_TRUSTED_PROXIES": "127.0.0.1",
    "CHAT_WS_SEND_RATE": "1000000",
    "CHAT_WS_SEND_BURST": "1000000",
}


class Nginx:
    """nginx in the foreground with deploy/nginx/chat.conf, its upstreams and port replaced,
    logging which node served each request."""

    def __init__(self, workdir, node_ports):
        self.port = free_port()
        site = open(os.path.join(ROOT, "deploy", "nginx", "chat.conf")).read()
        servers = "".join(f"    server 127.0.0.1:{port};\n" for port in node_ports)
        site = site.replace("    server node1:8000;\n    server node2:8000;\n", servers)
        site = site.replace("listen 80;", f"listen 127.0.0.1:{self.port};")
        assert site.count(servers) == 2 and str(self.port) in site, "deploy/nginx/chat.conf changed shape"
        self.access_log = os.path.join(workdir, "nginx-access.log")
        config = os.path.join(workdir, "nginx.conf")
        with open(config, "w") as file:
            file.write(f"""
pid {workdir}/nginx.pid;
error_log {workdir}/nginx-error.log warn;
events {{ worker_connections 4096; }}
http {{
    log_format upstream '$request_uri $status $upstream_addr';
    access_log {self.access_log} upstream;
    client_body_temp_path {workdir}/nginx-body;
    proxy_temp_path {workdir}/nginx-proxy;
    {site}
}}
""")
        self.process = subprocess.Popen(["nginx", "-p", workdir, "-c", config, "-g", "daemon off;"])
        self.url = f"http://127.0.0.1:{self.port}"
        wait_until_ready(self.url + "/health/ready", self.process)

    def upstreams(self, path_prefix, count):
        """The node addresses that served the requests whose URI starts with `path_prefix`,
        once `count` of them are logged (nginx logs a WebSocket when it has closed)."""
        deadline = time.time() + 10
        while True:
            with open(self.access_log) as file:
                served = [line.split()[2] for line in file if line.startswith(path_prefix)]
            if len(served) >= count or time.time() > deadline:
                return served
            time.sleep(0.05)

    def stop(self):
        self.process.terminate()
        self.process.wait()


class Client:
    """REST calls through the proxy with a session cookie, as a browser on its page makes them."""

    def __init__(self, port):
        self.port = port
        self.origin = f"http://127.0.0.1:{port}"
        self.cookie = None

    def call(self, method, path, body=None, form=None, origin=None):
        headers = {"Origin": origin or self.origin}
        if self.cookie:
            headers["Cookie"] = self.cookie
        data = None
        if body is not None:
            headers["Content-Type"] = "application/json"
            data = json.dumps(body)
        if form is not None:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            data = form
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        connection.request(method, path, body=data, headers=headers)
        response = connection.getresponse()
        payload = response.read()
        set_cookie = response.getheader("Set-Cookie")
        connection.close()
        return response.status, (json.loads(payload) if payload else None), set_cookie

    def log_in(self, name):
        status, _, set_cookie = self.call("POST", "/auth/login", form=f"username={name}&password={PASSWORD}")
        require(status == 200 and set_cookie and "HttpOnly" in set_cookie, f"log-in through the proxy: {status}")
        self.cookie = set_cookie.split(";")[0]


class WebSocket:
    """A minimal RFC 6455 client: masked text frames out, unmasked frames in."""

    def __init__(self, port, cookie, origin):
        self.socket = socket.create_connection(("127.0.0.1", port), timeout=10)
        key = base64.b64encode(os.urandom(16)).decode()
        request = (f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                   f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\nOrigin: {origin}\r\n"
                   f"Cookie: {cookie}\r\n\r\n")
        self.socket.sendall(request.encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.socket.recv(1)
            if not chunk:
                break
            head += chunk
        self.status = int(head.split(b" ")[1]) if head else 0
        self.buffer = b""

    def send(self, frame):
        payload = json.dumps(frame).encode()
        mask = os.urandom(4)
        header = bytes([0x81])
        if len(payload) < 126:
            header += bytes([0x80 | len(payload)])
        else:
            header += bytes([0x80 | 126]) + struct.pack("!H", len(payload))
        masked = bytes(byte ^ mask[index % 4] for index, byte in enumerate(payload))
        self.socket.sendall(header + mask + masked)

    def read(self, count):
        while len(self.buffer) < count:
            chunk = self.socket.recv(65536)
            if not chunk:
                sys.exit("nginx test FAILED: a WebSocket closed unexpectedly")
            self.buffer += chunk
        data, self.buffer = self.buffer[:count], self.buffer[count:]
        return data

    def next(self):
        """The next text frame, parsed (pings are answered by the server's timing, not here)."""
        while True:
            first, second = self.read(2)
            length = second & 0x7F
            if length == 126:
                length = struct.unpack("!H", self.read(2))[0]
            elif length == 127:
                length = struct.unpack("!Q", self.read(8))[0]
            payload = self.read(length)
            if first & 0x0F == 0x1:
                return json.loads(payload)

    def next_of(self, kind):
        while True:
            frame = self.next()
            if frame["type"] == kind:
                return frame

    def close(self):
        self.socket.close()


def require(condition, message):
    if not condition:
        sys.exit(f"nginx test FAILED: {message}")
    log(f"ok: {message}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--keep", help="keep the logs in this directory")
    arguments = parser.parse_args()
    server_binary, chatsim = build()
    workdir = arguments.keep or tempfile.mkdtemp(prefix="chat-nginx-")
    os.makedirs(workdir, exist_ok=True)
    postgres = Postgres(workdir)
    nodes, nginx = [], None
    try:
        database = postgres.create_database("chat_nginx")
        nodes = [Server(server_binary, database, workdir, f"node{index}",
                        dict(ENVIRONMENT, CHAT_NODE_NAME=f"node{index}")) for index in (1, 2)]
        nginx = Nginx(workdir, [node.port for node in nodes])

        alice, bob = Client(nginx.port), Client(nginx.port)
        for name in ("alice", "bob"):
            status, _, _ = alice.call("POST", "/user", body={"name": name, "email": f"{name}@example.com",
                                                             "password": PASSWORD})
            require(status == 201, f"{name} registered through the proxy")
        alice.log_in("alice")
        bob.log_in("bob")
        status, body, _ = alice.call("GET", "/metrics")
        require(status == 404 and body["error"]["code"] == "not_found", f"/metrics is not served to the public: {status}")
        status, chat, _ = alice.call("POST", "/chat", body={"name": "Through nginx", "chat_type": "GROUP"})
        require(status == 201, "a cookie-authenticated request from the page's Origin passes the proxy")
        status, bob_user, _ = bob.call("GET", "/users/me")
        add_bob = f"/chat/add_user/{bob_user['id']}/{chat['id']}"
        status, _, _ = alice.call("POST", add_bob, origin="https://evil.example")
        require(status == 403, "a cross-site Origin is refused through the proxy")
        status, _, _ = alice.call("POST", add_bob)
        require(status in (200, 201), "bob added to the chat")

        refused = WebSocket(nginx.port, alice.cookie, "https://evil.example")
        require(refused.status == 403, "a cross-site WebSocket handshake is refused through the proxy")
        refused.close()
        sockets = [WebSocket(nginx.port, client.cookie, client.origin) for client in (alice, alice, bob, bob)]
        require(all(ws.status == 101 for ws in sockets), "four cookie-authenticated WebSockets upgraded")
        for ws in sockets:
            ws.next_of("ready")

        sockets[0].send({"type": "send", "chat_id": chat["id"], "client_id": "through-nginx", "text": "hello"})
        require(sockets[0].next_of("ack")["message"]["seq"] == 1, "the sender's ack")
        for ws in sockets[1:]:
            require(ws.next_of("message")["message"]["client_id"] == "through-nginx", "delivered on the other connections")
        sockets[2].send({"type": "read", "chat_id": chat["id"], "seq": 1})
        for ws in (sockets[0], sockets[1], sockets[3]):
            frame = ws.next_of("read")
            require(frame["user_id"] == bob_user["id"] and frame["seq"] == 1, "bob's read reaches every socket")
        for ws in sockets:
            ws.close()
        served = nginx.upstreams("/ws 101", 4)
        require(len(served) == 4 and len(set(served)) == 2, f"the WebSockets went to both nodes: {served}")

        report = os.path.join(workdir, "chatsim-fanout.json")
        run([chatsim, "fanout", "--url", nginx.url, "--users", "20", "--senders", "4", "--rate", "50",
             "--warmup", "1", "--duration", "5", "--seed", "1", "--quiet", "--json", report])
        with open(report) as file:
            result = json.load(file)
        require(result["passed"], "chatsim's checker passed the fanout through nginx")
        served = nginx.upstreams("/ws 101", 4 + result["devices"])
        require(len(served) == 4 + result["devices"] and len(set(served[4:])) == 2,
                "chatsim's connections were spread over both nodes")

        # The conformance checks through the proxy: one URL, so the cross-node ones are skipped.
        log(f"$ {chatsim} verify --url {nginx.url}")
        verify = subprocess.run([chatsim, "verify", "--url", nginx.url, "--junit", os.path.join(workdir, "verify.xml")])
        require(verify.returncode == 0, "chatsim verify passes through nginx")
    finally:
        if nginx:
            nginx.stop()
        for node in nodes:
            node.stop()
        postgres.stop()
        if not arguments.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    log("passed")


if __name__ == "__main__":
    main()
