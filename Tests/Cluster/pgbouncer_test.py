#!/usr/bin/env python3
"""End-to-end test of the documented pooled setup: chat-server nodes whose queries go through
PgBouncer in transaction pooling mode and whose LISTEN connection goes to PostgreSQL directly
(DATABASE_LISTEN_URL), on one throwaway PostgreSQL (docs/operations.md, "Behind a connection
pooler").

The nodes start together, so their migrations meet at the advisory lock through the pooler;
`chatsim verify`'s conformance checks, cross-node ones included, pass on two of them; a fanout
across all of them loses, repeats and reorders nothing; and PostgreSQL serves the nodes with no
more backends than PgBouncer's pool and one LISTEN connection per node. A node that LISTENs
through the pooler hears nothing, and says so in its log.

With --measure, the same fanout runs once more with the nodes connected directly, and the
peak count of PostgreSQL's client backends is printed for both (docs/benchmarks.md).

Usage: pgbouncer_test.py [--nodes N] [--measure] [--keep DIR]
Needs PgBouncer (Debian's pgbouncer; scripts/pgbouncer-test installs it) and PostgreSQL's binaries.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "scripts"))
from harness import Postgres, Server, build, free_port, log, run, wait_until_ready  # noqa: E402

ENVIRONMENT = {
    "CHAT_ENV": "test",
    "CHAT_LOG_LEVEL": "warning",
    "CHAT_JWT_SECRET": "pgbouncer-test-secret-that-is-long-enough-for-hs256",
    "CHAT_BCRYPT_COST": "4",
    "CHAT_WS_SEND_RATE": "1000000",
    "CHAT_WS_SEND_BURST": "1000000",
    "CHAT_HEARTBEAT_INTERVAL_MS": "500",
}
# PgBouncer's server connections for the chat database: what PostgreSQL sees of every node's
# pool together.
POOL_SIZE = 10


class PgBouncer:
    """PgBouncer in the foreground in transaction pooling mode, in front of `postgres`."""

    def __init__(self, workdir, postgres, database):
        self.port = free_port()
        self.postgres = postgres
        self.database = database
        config = os.path.join(workdir, "pgbouncer.ini")
        users = os.path.join(workdir, "pgbouncer-users.txt")
        with open(users, "w") as file:
            file.write('"postgres" ""\n')
        with open(config, "w") as file:
            file.write(f"""[databases]
{database} = host={postgres.host} port={postgres.port} dbname={database} pool_size={POOL_SIZE}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {self.port}
unix_socket_dir =
auth_type = trust
auth_file = {users}
pool_mode = transaction
max_client_conn = 2000
logfile = {workdir}/pgbouncer.log
pidfile = {workdir}/pgbouncer.pid
""")
        # PgBouncer refuses to run as root: as root, it runs as PostgreSQL's owner.
        binary = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
        self.process = subprocess.Popen([binary, "-q", config], user="postgres" if os.geteuid() == 0 else None)
        deadline = time.time() + 10
        ready = [f"{postgres.bin}/pg_isready", "-q", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres"]
        while subprocess.run(ready).returncode:
            if self.process.poll() is not None or time.time() > deadline:
                sys.exit(f"pgbouncer test FAILED: PgBouncer did not start (see {workdir}/pgbouncer.log)")
            time.sleep(0.1)

    def url(self):
        return self.postgres.url(self.database, host="127.0.0.1", port=self.port)

    def stop(self):
        self.process.terminate()
        self.process.wait()


class BackendSampler:
    """Samples PostgreSQL's client backends on the chat database every 0.1 s: the peak."""

    def __init__(self, postgres, database):
        self.postgres, self.database = postgres, database
        self.peak, self.stopping = 0, threading.Event()
        self.thread = threading.Thread(target=self.sample)
        self.thread.start()

    def sample(self):
        while not self.stopping.is_set():
            # Less this sampler's own backend.
            count = int(self.postgres.psql(self.database, f"""
                SELECT count(*) - 1 FROM pg_stat_activity
                WHERE backend_type = 'client backend' AND datname = '{self.database}'"""))
            self.peak = max(self.peak, count)
            time.sleep(0.1)

    def stop(self):
        self.stopping.set()
        self.thread.join()
        return self.peak


def require(condition, message):
    if not condition:
        sys.exit(f"pgbouncer test FAILED: {message}")
    log(f"ok: {message}")


def start_together(count, make):
    """Starts `count` servers at once (each `make(index)`), and returns them in order."""
    servers = [None] * count

    def start(index):
        servers[index] = make(index)

    threads = [threading.Thread(target=start, args=(index,)) for index in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if None in servers:
        sys.exit("pgbouncer test FAILED: a node did not start")
    return servers


def fanout(chatsim, nodes, workdir, name):
    report = os.path.join(workdir, f"chatsim-{name}.json")
    run([chatsim, "fanout", "--url", ",".join(node.url for node in nodes), "--users", "40", "--senders", "8",
         "--rate", "200", "--warmup", "1", "--duration", "8", "--seed", "1", "--quiet", "--json", report])
    with open(report) as file:
        return json.load(file)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nodes", type=int, default=4, help="nodes to run through the pooler (at least 2)")
    parser.add_argument("--measure", action="store_true", help="compare PostgreSQL's backends without the pooler")
    parser.add_argument("--keep", help="keep the logs in this directory")
    arguments = parser.parse_args()
    server_binary, chatsim = build()
    workdir = arguments.keep or tempfile.mkdtemp(prefix="chat-pgbouncer-")
    os.makedirs(workdir, exist_ok=True)
    postgres = Postgres(workdir)
    nodes, bouncer = [], None
    try:
        direct = postgres.create_database("chat")
        bouncer = PgBouncer(workdir, postgres, "chat")

        nodes = start_together(arguments.nodes, lambda index: Server(
            server_binary, bouncer.url(), workdir, f"pooled{index + 1}",
            dict(ENVIRONMENT, CHAT_NODE_NAME=f"pooled{index + 1}", DATABASE_LISTEN_URL=direct)))
        migrations = postgres.psql("chat", "SELECT count(*), count(DISTINCT version) FROM schema_migrations")
        require(len(set(migrations.strip().split("|"))) == 1,
                f"{arguments.nodes} nodes started together through the pooler and applied each migration once")
        listening = postgres.psql("chat", """SELECT count(*) FROM pg_stat_activity
            WHERE backend_type = 'client backend' AND query LIKE 'LISTEN%'""")
        require(int(listening) == arguments.nodes, f"each node LISTENs on a connection of its own: {listening.strip()}")

        log(f"$ {chatsim} verify --url {nodes[0].url},{nodes[1].url}")
        verify = subprocess.run([chatsim, "verify", "--url", f"{nodes[0].url},{nodes[1].url}",
                                 "--junit", os.path.join(workdir, "verify.xml")])
        require(verify.returncode == 0, "chatsim verify's checks pass on two nodes through the pooler")

        sampler = BackendSampler(postgres, "chat")
        result = fanout(chatsim, nodes, workdir, "pooled")
        pooled_peak = sampler.stop()
        require(result["passed"], f"chatsim's checker passed a fanout over {arguments.nodes} pooled nodes")
        require(pooled_peak <= POOL_SIZE + arguments.nodes,
                f"PostgreSQL served {arguments.nodes} nodes with {pooled_peak} backends at most "
                f"(PgBouncer's pool of {POOL_SIZE} and one LISTEN connection per node)")

        if arguments.measure:
            for node in nodes:
                node.stop()
            nodes = start_together(arguments.nodes, lambda index: Server(
                server_binary, direct, workdir, f"direct{index + 1}",
                dict(ENVIRONMENT, CHAT_NODE_NAME=f"direct{index + 1}")))
            sampler = BackendSampler(postgres, "chat")
            result = fanout(chatsim, nodes, workdir, "direct")
            direct_peak = sampler.stop()
            require(result["passed"], f"chatsim's checker passed a fanout over {arguments.nodes} direct nodes")
            log(f"peak PostgreSQL client backends for {arguments.nodes} nodes under the same fanout: "
                f"{pooled_peak} through PgBouncer (pool {POOL_SIZE}), {direct_peak} direct")
        # Last, as it leaves a pooled server connection LISTENing: a node that LISTENs through the
        # pooler hears nothing (its probes included), and its log says so.
        deaf = Server(server_binary, bouncer.url(), workdir, "deaf", dict(ENVIRONMENT, CHAT_NODE_NAME="deaf"))
        nodes.append(deaf)
        deadline = time.time() + 15
        while "heard nothing" not in open(deaf.log_path).read() and time.time() < deadline:
            time.sleep(0.2)
        require("heard nothing" in open(deaf.log_path).read(),
                "a node whose LISTEN goes through the transaction pooler logs that it hears nothing")
    finally:
        for node in nodes:
            node.stop()
        if bouncer:
            bouncer.stop()
        postgres.stop()
        if not arguments.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    log("passed")


if __name__ == "__main__":
    main()
