"""Waits for a chat-server to be ready, registers a user and prints a Bearer token for it
(scripts/api-fuzz)."""

import json
import sys
import time
import urllib.parse
import urllib.request

base = sys.argv[1]
deadline = time.time() + 60
while True:
    try:
        with urllib.request.urlopen(f"{base}/health/ready", timeout=2):
            break
    except Exception as error:
        if time.time() > deadline:
            sys.exit(f"{base} did not become ready: {error}")
        time.sleep(0.2)

account = {"name": "fuzzer", "email": "fuzzer@example.invalid", "password": "fuzzer-password"}
request = urllib.request.Request(f"{base}/user", data=json.dumps(account).encode(),
                                 headers={"Content-Type": "application/json"})
urllib.request.urlopen(request).read()
form = urllib.parse.urlencode({"grant_type": "password", "username": "fuzzer", "password": "fuzzer-password"})
with urllib.request.urlopen(f"{base}/auth/login", data=form.encode()) as response:
    print(json.load(response)["access_token"])
