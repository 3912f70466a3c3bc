"""What the scripts that drive release binaries share: building them, a throwaway PostgreSQL
cluster, and chat-server processes on free ports (scripts/bench, scripts/fault-runs,
scripts/check-observability, Tests/Clients/run_tutorials.py)."""

import datetime
import glob
import json
import os
import pwd
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import resource

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def log(message):
    print(f"{os.path.basename(sys.argv[0])}: {message}", file=sys.stderr, flush=True)


def run(command, **kwargs):
    log("$ " + " ".join(command))
    return subprocess.run(command, check=True, **kwargs)


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def raise_file_limit():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def wait_until_ready(url, process, deadline=60):
    end = time.time() + deadline
    while True:
        if process.poll() is not None:
            sys.exit(f"the process serving {url} exited with {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except Exception:
            pass
        if time.time() > end:
            sys.exit(f"{url} did not become ready")
        time.sleep(0.2)


def build(root=ROOT, products=("chat-server", "chatsim")):
    """Release binaries of chat-server and chatsim (of the project at `root`), built as
    scripts/build-release builds the server (the Swift runtime linked in statically): other
    flags would build everything again."""
    for product in products:
        run(["swift", "build", "-c", "release", "--static-swift-stdlib", "--product", product], cwd=root)
    bin_path = subprocess.run(["swift", "build", "-c", "release", "--show-bin-path"], cwd=root, check=True,
                              capture_output=True, text=True).stdout.strip()
    return tuple(os.path.join(bin_path, product) for product in products)


def chatsim_report(command, json_path, name):
    """Runs a chatsim command that writes its report to `json_path`, and returns the report
    (a failed check is a report too; a run that wrote none stops the suite)."""
    log("$ " + " ".join(command))
    completed = subprocess.run(command, capture_output=True, text=True, preexec_fn=raise_file_limit)
    sys.stderr.write(completed.stdout)
    if completed.returncode not in (0, 1) or not os.path.exists(json_path):
        sys.stderr.write(completed.stderr)
        sys.exit(f"chatsim {name} failed with status {completed.returncode}")
    with open(json_path) as file:
        return json.load(file)


class Postgres:
    """A throwaway cluster on a free port, removed with its work directory; on the loopback
    address, or on a test host of scripts/testnet.py that lets in the hosts of its network."""

    def __init__(self, workdir, host=None):
        self.bin = self.find_binaries()
        self.host = host.address if host else "127.0.0.1"
        self.port = free_port()
        self.data = os.path.join(workdir, "pgdata")
        self.sockets = os.path.join(workdir, "pgsock")
        self.log_path = os.path.join(workdir, "postgres.log")
        os.makedirs(self.sockets)
        self.as_postgres = host.command_prefix if host else []
        if os.geteuid() == 0:
            # initdb and postgres refuse to run as root.
            user = pwd.getpwnam("postgres")
            os.chown(workdir, user.pw_uid, user.pw_gid)
            os.chown(self.sockets, user.pw_uid, user.pw_gid)
            self.as_postgres += ["runuser", "-u", "postgres", "--"]
        run(self.as_postgres + [f"{self.bin}/initdb", "-D", self.data, "-U", "postgres", "--auth=trust",
                                "--no-sync", "--locale=C.UTF-8", "-E", "UTF8"], stdout=subprocess.DEVNULL)
        if host:
            with open(os.path.join(self.data, "pg_hba.conf"), "a") as hba:
                hba.write(f"host all all {host.address.rsplit('.', 1)[0]}.0/24 trust\n")
        options = (f"-p {self.port} -k {self.sockets} -c listen_addresses={self.host} -c max_connections=200 "
                   "-c log_timezone=UTC")
        run(self.as_postgres + [f"{self.bin}/pg_ctl", "start", "-D", self.data, "-l", self.log_path, "-w",
                                "-o", options], stdout=subprocess.DEVNULL)
        self.version = subprocess.run([f"{self.bin}/postgres", "--version"], capture_output=True,
                                      text=True).stdout.strip()

    @staticmethod
    def find_binaries():
        for _ in range(2):
            for directory in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
                if all(os.access(f"{directory}/{name}", os.X_OK) for name in ["initdb", "postgres", "pgbench"]):
                    return directory
            run([os.path.join(ROOT, "scripts", "install-postgres")])
        sys.exit("PostgreSQL's initdb, postgres and pgbench are needed (Debian package postgresql)")

    @property
    def pid(self):
        """The postmaster's pid."""
        with open(os.path.join(self.data, "postmaster.pid")) as file:
            return int(file.readline())

    def url(self, database, host=None, port=None):
        """The URL of `database`, or of the same through a proxy at `host` and `port`."""
        return f"postgres://postgres@{host or self.host}:{port or self.port}/{database}?sslmode=disable"

    def create_database(self, name):
        run([f"{self.bin}/createdb", "-h", self.host, "-p", str(self.port), "-U", "postgres", name])
        return self.url(name)

    def psql(self, database, sql):
        """Runs `sql` in `database` and returns what it printed, unaligned and without headers."""
        return subprocess.run([f"{self.bin}/psql", "-h", self.host, "-p", str(self.port), "-U", "postgres", "-d",
                               database, "-v", "ON_ERROR_STOP=1", "-q", "-At", "-c", sql], check=True,
                              capture_output=True, text=True).stdout

    def pg_ctl(self, *arguments):
        run(self.as_postgres + [f"{self.bin}/pg_ctl", *arguments, "-D", self.data], stdout=subprocess.DEVNULL)

    def restart(self, mode):
        """`pg_ctl restart -m <mode>`: `fast` rolls back and disconnects cleanly, `immediate`
        kills every backend at once and recovers from the WAL at the next start."""
        self.pg_ctl("restart", "-m", mode, "-l", self.log_path, "-w")

    def ready_since(self):
        """When PostgreSQL last became ready for connections, as seconds since the epoch, from
        its log (the clock `now()` and `clock_timestamp()` read)."""
        with open(self.log_path) as server_log:
            lines = [line for line in server_log if "database system is ready to accept connections" in line]
        stamp = " ".join(lines[-1].split()[:2])  # 2026-12-05 23:23:10.910
        return datetime.datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S.%f").replace(
            tzinfo=datetime.timezone.utc).timestamp()

    def stop(self):
        subprocess.run(self.as_postgres + [f"{self.bin}/pg_ctl", "stop", "-D", self.data, "-m", "fast"],
                       capture_output=True)


class Standby:
    """A streaming standby of `primary` (a Postgres above, on the loopback address), made with
    `pg_basebackup -R` into the same work directory and started on its own port."""

    def __init__(self, primary, workdir):
        self.primary = primary
        self.bin = primary.bin
        self.host = primary.host
        self.port = free_port()
        self.data = os.path.join(workdir, "standby")
        self.log_path = os.path.join(workdir, "standby.log")
        run(primary.as_postgres + [f"{self.bin}/pg_basebackup", "-D", self.data, "-h", primary.host, "-p",
                                   str(primary.port), "-U", "postgres", "-X", "stream", "-R", "--checkpoint=fast",
                                   "--no-sync"], stdout=subprocess.DEVNULL)
        self.start()

    def start(self):
        options = (f"-p {self.port} -k {self.primary.sockets} -c listen_addresses={self.host} "
                   "-c max_connections=200 -c log_timezone=UTC")
        run(self.primary.as_postgres + [f"{self.bin}/pg_ctl", "start", "-D", self.data, "-l", self.log_path, "-w",
                                        "-o", options], stdout=subprocess.DEVNULL)

    @property
    def pid(self):
        with open(os.path.join(self.data, "postmaster.pid")) as file:
            return int(file.readline())

    def url(self, database):
        return f"postgres://postgres@{self.host}:{self.port}/{database}?sslmode=disable"

    def kill(self):
        """`pg_ctl stop -m immediate`: every backend ends at once, as in a crash."""
        run(self.primary.as_postgres + [f"{self.bin}/pg_ctl", "stop", "-D", self.data, "-m", "immediate"],
            stdout=subprocess.DEVNULL)

    def stop(self):
        subprocess.run(self.primary.as_postgres + [f"{self.bin}/pg_ctl", "stop", "-D", self.data, "-m", "fast"],
                       capture_output=True)


class Server:
    """A chat-server on a free port (on the loopback address, or on a test host of
    scripts/testnet.py); `kill` and `start` keep the port."""

    def __init__(self, binary, database_url, workdir, name, environment, host=None):
        self.binary = binary
        self.workdir = workdir
        self.host = host
        self.port = free_port()
        address = host.address if host else "127.0.0.1"
        self.url = f"http://{address}:{self.port}"
        self.environment = {**os.environ, **environment, "CHAT_HOST": address, "CHAT_PORT": str(self.port),
                            "DATABASE_URL": database_url}
        self.log_path = os.path.join(workdir, f"server-{name}.log")
        self.log = open(self.log_path, "a")
        self.start()

    def start(self):
        prefix = self.host.command_prefix if self.host else []
        self.process = subprocess.Popen(prefix + [self.binary, "serve"], env=self.environment, cwd=self.workdir,
                                        stdout=self.log, stderr=subprocess.STDOUT, preexec_fn=raise_file_limit)
        wait_until_ready(self.url + "/health/ready", self.process)

    def kill(self):
        """SIGKILL: no graceful shutdown, no closing handshakes."""
        self.process.kill()
        self.process.wait()

    def stop(self):
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
