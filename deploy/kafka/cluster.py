#!/usr/bin/python3
"""A local Apache Kafka cluster for deploy/dev and the black-box tests.

Starts NODES (default 3) Kafka processes in KRaft mode, each a broker and a
controller, on free loopback ports, from the jars that deploy/kafka/fetch-jars
put in the cache. Each node has three listeners:

    PLAINTEXT  clients without security (the tests' own clients, the worker
               in most tests) and the brokers among themselves; its principal
               User:ANONYMOUS is a super user
    SASL_SSL   SCRAM-SHA-512 over TLS, with a certificate of a test CA made at
               start with openssl (SAN 127.0.0.1 and localhost): the user
               `admin` (a super user) and the user `worker`, whose rights are
               only the ACLs granted to it (StandardAuthorizer, no ACL no
               access)
    CONTROLLER the KRaft quorum

Then it creates the contract's topics and grants `worker` the ACLs of the
contract's topics and group with Kafka's own tools (deploy/kafka/topics.sh,
deploy/kafka/worker-acls.sh: the commands the README's production quick start
gives), prints what it made as `NAME value` lines on stdout, ending with
`CONTROL host:port`, and serves a line protocol on that port:

    ping                 OK pong
    pid N                OK <pid of node N>
    stop N | cont N      SIGSTOP / SIGCONT node N (a hung broker)
    kill N | term N      SIGKILL / SIGTERM node N and wait until it exited
    start N              start node N again (after kill or term); OK once it
                         is a registered, unfenced broker again (its replicas
                         may still be catching up)
    down N | up N        kill N | start N
    nodes                OK 1:running 2:stopped 3:exited ...

On SIGTERM or SIGINT it kills the nodes and exits. The nodes die with it
(PR_SET_PDEATHSIG) and share its process group, so deploy/dev's cleanup of
the group reaches them too.
"""
import argparse
import ctypes
import json
import os
import queue
import secrets
import shutil
import signal
import socket
import socketserver
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
JVM_OPTS = [
    "-Xms128m", "-Xmx512m",
    # A small heap on a small machine: the serial collector costs least CPU,
    # and C1 alone starts several seconds faster on two cores.
    "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-XX:+ExitOnOutOfMemoryError",
    "-Djava.awt.headless=true",
]
# Kafka 4 logs through log4j2 (YAML), Kafka 3.9 through reload4j (properties).
LOG4J_PROPERTIES = """\
log4j.rootLogger=WARN, stdout
log4j.appender.stdout=org.apache.log4j.ConsoleAppender
log4j.appender.stdout.layout=org.apache.log4j.PatternLayout
log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c{1})%n
log4j.logger.kafka.server.KafkaRaftServer=INFO
log4j.logger.kafka.server.BrokerServer=INFO
log4j.logger.kafka.server.ControllerServer=INFO
log4j.logger.org.apache.kafka.controller.QuorumController=INFO
log4j.logger.kafka.Kafka=INFO
log4j.logger.kafka.authorizer.logger=INFO
"""
LOG4J = """\
Configuration:
  name: publish-worker-dev-kafka
  Appenders:
    Console:
      name: STDOUT
      PatternLayout:
        pattern: "[%d] %p %m (%c{1})%n"
  Loggers:
    Root:
      level: WARN
      AppenderRef:
        - ref: STDOUT
    Logger:
      - name: kafka.server.KafkaRaftServer
        level: INFO
      - name: kafka.server.BrokerServer
        level: INFO
      - name: kafka.server.ControllerServer
        level: INFO
      - name: org.apache.kafka.controller.QuorumController
        level: INFO
      - name: kafka.Kafka
        level: INFO
      - name: kafka.authorizer.logger
        level: INFO
"""


def log(msg):
    print(f"kafka-cluster: {msg}", file=sys.stderr, flush=True)


def free_ports(n):
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def die_with_parent():
    """In the child, before exec: SIGKILL when the thread that started it
    ends (the kernel's "parent" is the thread), so only the main thread
    starts nodes (Cluster.in_main)."""
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def java(jars, log_opts, main, *args):
    """A Kafka tool's command line: a short-lived JVM."""
    return [os.environ.get("JAVA", "java"), "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
            *log_opts, "-cp", f"{jars}/*", main, *args]


def make_tls(directory):
    """A test CA and a broker certificate for 127.0.0.1 and localhost, PEM."""
    d = Path(directory)
    run = lambda *a: subprocess.run(a, check=True, capture_output=True)  # noqa: E731
    run("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        "-subj", "/CN=publish-worker test CA", "-keyout", d / "ca.key", "-out", d / "ca.pem",
        "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign")
    run("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost",
        "-keyout", d / "broker.key", "-out", d / "broker.csr")
    (d / "broker.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n"
                                  "extendedKeyUsage=serverAuth\n")
    run("openssl", "x509", "-req", "-in", d / "broker.csr", "-CA", d / "ca.pem",
        "-CAkey", d / "ca.key", "-CAcreateserial", "-days", "2", "-extfile", d / "broker.ext",
        "-out", d / "broker.crt")
    # Kafka's PEM key store: the PKCS#8 key, then the certificate chain.
    key = subprocess.run(["openssl", "pkcs8", "-topk8", "-nocrypt", "-in", d / "broker.key"],
                         check=True, capture_output=True, text=True).stdout
    (d / "broker.pem").write_text(key + (d / "broker.crt").read_text() + (d / "ca.pem").read_text())
    os.chmod(d / "broker.pem", 0o600)
    return d / "ca.pem", d / "broker.pem"


class Node:
    def __init__(self, cluster, node_id, ports):
        self.cluster, self.id = cluster, node_id
        self.plain, self.controller, self.sasl = ports
        self.dir = cluster.dir / f"node-{node_id}"
        self.data = self.dir / "data"
        self.config = self.dir / "server.properties"
        self.proc = None

    def write_config(self, voters, keystore):
        self.data.mkdir(parents=True, exist_ok=True)
        props = {
            "process.roles": "broker,controller",
            "node.id": self.id,
            "controller.quorum.voters": voters,
            "controller.listener.names": "CONTROLLER",
            "listeners": f"PLAINTEXT://127.0.0.1:{self.plain},"
                         f"CONTROLLER://127.0.0.1:{self.controller},"
                         f"SASL_SSL://127.0.0.1:{self.sasl}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{self.plain},"
                                    f"SASL_SSL://127.0.0.1:{self.sasl}",
            "listener.security.protocol.map":
                "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,SASL_SSL:SASL_SSL",
            "inter.broker.listener.name": "PLAINTEXT",
            "log.dirs": self.data,
            # What production is told to run (README, Kafka): three replicas,
            # two in sync for an acks=all write.
            "num.partitions": 3,
            "default.replication.factor": 3,
            "min.insync.replicas": 2,
            "offsets.topic.replication.factor": 3,
            "offsets.topic.num.partitions": 6,
            "transaction.state.log.replication.factor": 3,
            "transaction.state.log.min.isr": 2,
            "transaction.state.log.num.partitions": 3,
            "auto.create.topics.enable": "false",
            # Fast tests: no wait for more members before the first
            # rebalance, and the short session timeouts the tests use.
            "group.initial.rebalance.delay.ms": 0,
            "group.min.session.timeout.ms": 1000,
            # A node that stops heartbeating is fenced (its leaderships move)
            # after 6 s instead of 9.
            "broker.session.timeout.ms": 6000,
            "broker.heartbeat.interval.ms": 1000,
            # Small: two cores and a few MB of traffic.
            "num.network.threads": 2,
            "num.io.threads": 2,
            "background.threads": 2,
            "num.recovery.threads.per.data.dir": 1,
            "log.cleaner.threads": 1,
            "log.cleaner.dedupe.buffer.size": 8 * 1024 * 1024,
            # Security: SCRAM over TLS, ACLs enforced everywhere.
            "sasl.enabled.mechanisms": "SCRAM-SHA-512",
            "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config":
                "org.apache.kafka.common.security.scram.ScramLoginModule required;",
            "ssl.keystore.type": "PEM",
            "ssl.keystore.location": keystore,
            "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            "super.users": "User:ANONYMOUS;User:admin",
            "allow.everyone.if.no.acl.found": "false",
        }
        self.config.write_text("".join(f"{k}={v}\n" for k, v in props.items()))

    def format_cmd(self, cluster_id, users):
        scram = []
        for name, password in users.items():
            scram += ["--add-scram", f"SCRAM-SHA-512=[name={name},password={password}]"]
        return java(self.cluster.jars, self.cluster.log_opts, "kafka.tools.StorageTool", "format",
                    "--cluster-id", cluster_id, "--config", str(self.config),
                    "--ignore-formatted", *scram)

    def start(self):
        out = open(self.dir / "kafka.log", "ab")
        cmd = [os.environ.get("JAVA", "java"), *JVM_OPTS,
               *self.cluster.log_opts,
               "-cp", f"{self.cluster.jars}/*", "kafka.Kafka", str(self.config)]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out,
                                     stderr=subprocess.STDOUT, preexec_fn=die_with_parent)
        out.close()

    def state(self):
        if self.proc is None or self.proc.poll() is not None:
            return "exited"
        with open(f"/proc/{self.proc.pid}/stat") as f:
            return "stopped" if f.read().rsplit(")", 1)[1].split()[0] == "T" else "running"

    def signal_and_wait(self, sig, timeout):
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(sig)
        if sig == signal.SIGTERM:
            self.proc.send_signal(signal.SIGCONT)  # a stopped node must run to exit
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class Cluster:
    def __init__(self, args):
        self.dir = Path(args.dir).resolve()
        self.jars = Path(args.jars).resolve()
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "log4j2.yaml").write_text(LOG4J)
        (self.dir / "log4j.properties").write_text(LOG4J_PROPERTIES)
        self.log_opts = [f"-Dlog4j2.configurationFile={self.dir / 'log4j2.yaml'}",
                         f"-Dlog4j.configuration=file:{self.dir / 'log4j.properties'}"]
        self.nodes = []
        ports = free_ports(3 * args.nodes)
        for i in range(args.nodes):
            self.nodes.append(Node(self, i + 1, ports[3 * i:3 * i + 3]))
        core = sorted(self.jars.glob("kafka_2.13-*.jar"))
        if not core:
            raise SystemExit(f"kafka-cluster: no kafka_2.13-*.jar in {self.jars}")
        self.version = core[0].name[len("kafka_2.13-"):-len(".jar")]
        self.users = {"admin": secrets.token_hex(12), "worker": secrets.token_hex(12)}
        self.lock = threading.Lock()
        self.main_jobs = queue.Queue()  # (function, result queue): run by the main thread

    def in_main(self, fn):
        """Runs fn on the main thread (see die_with_parent); returns its result."""
        done = queue.Queue()
        self.main_jobs.put((fn, done))
        ok, value = done.get()
        if not ok:
            raise value
        return value

    def serve_main_jobs(self):
        while True:
            fn, done = self.main_jobs.get()
            try:
                done.put((True, fn()))
            except Exception as e:
                done.put((False, e))

    @property
    def bootstrap(self):
        return ",".join(f"127.0.0.1:{n.plain}" for n in self.nodes)

    @property
    def sasl_bootstrap(self):
        return ",".join(f"127.0.0.1:{n.sasl}" for n in self.nodes)

    def node(self, arg):
        n = int(arg)
        if not 1 <= n <= len(self.nodes):
            raise ValueError(f"no node {arg}")
        return self.nodes[n - 1]

    def setup(self):
        started = time.monotonic()
        self.ca, keystore = make_tls(self.dir)
        voters = ",".join(f"{n.id}@127.0.0.1:{n.controller}" for n in self.nodes)
        for n in self.nodes:
            n.write_config(voters, keystore)
        self.admin_config = self.dir / "admin.properties"
        self.admin_config.write_text(
            "security.protocol=SASL_SSL\nsasl.mechanism=SCRAM-SHA-512\n"
            f"sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required "
            f"username=\"admin\" password=\"{self.users['admin']}\";\n"
            f"ssl.truststore.type=PEM\nssl.truststore.location={self.ca}\n")
        os.chmod(self.admin_config, 0o600)
        # Format every node's storage at once, SCRAM users included (KRaft
        # keeps them in the metadata log from its first record).
        cid = cluster_id_b64()
        procs = [subprocess.Popen(n.format_cmd(cid, self.users), stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, preexec_fn=die_with_parent)
                 for n in self.nodes]
        for n, p in zip(self.nodes, procs):
            out = p.communicate()[0].decode(errors="replace")
            (n.dir / "format.log").write_text(out)
            if p.returncode != 0:
                raise RuntimeError(f"formatting node {n.id} failed:\n{out}")
        log(f"formatted {len(self.nodes)} nodes in {time.monotonic() - started:.1f}s")
        for n in self.nodes:
            n.start()
        self.wait_up(90)
        log(f"{len(self.nodes)} brokers up in {time.monotonic() - started:.1f}s")

    def wait_up(self, timeout):
        """Until every node is a registered, unfenced broker."""
        from confluent_kafka.admin import AdminClient
        admin = AdminClient({"bootstrap.servers": self.bootstrap, "log_level": 0})
        deadline = time.monotonic() + timeout
        while True:
            for n in self.nodes:
                if n.proc.poll() is not None:
                    raise RuntimeError(f"node {n.id} exited with {n.proc.returncode}; "
                                       f"see {n.dir / 'kafka.log'}")
            try:
                if len(admin.list_topics(timeout=2).brokers) == len(self.nodes):
                    return
            except Exception:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"the brokers did not all register within {timeout}s")
            time.sleep(0.2)

    def wait_registered(self, node, since, timeout):
        """Until node's log, past offset since, says the server started: its
        broker registered with the controller and was unfenced. (Metadata
        would still list a killed node until the controller fences it.)"""
        log_path = node.dir / "kafka.log"
        deadline = time.monotonic() + timeout
        while True:
            if node.proc.poll() is not None:
                raise RuntimeError(f"node {node.id} exited with {node.proc.returncode}")
            with open(log_path, "rb") as f:
                f.seek(since)
                if b"Kafka Server started" in f.read():
                    return
            if time.monotonic() > deadline:
                raise RuntimeError(f"node {node.id} not started after {timeout} s")
            time.sleep(0.2)

    def serve(self, port):
        cluster = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self):
                for raw in self.rfile:
                    line = raw.decode(errors="replace").strip()
                    if not line:
                        continue
                    try:
                        reply = cluster.command(line.split())
                    except Exception as e:
                        reply = f"ERR {e}"
                    self.wfile.write((reply + "\n").encode())
                    self.wfile.flush()

        class Server(socketserver.ThreadingTCPServer):
            daemon_threads = True
            allow_reuse_address = True

        server = Server(("127.0.0.1", port), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return server.server_address[1]

    def command(self, words):
        cmd, args = words[0], words[1:]
        if cmd == "ping":
            return "OK pong"
        if cmd == "nodes":
            return "OK " + " ".join(f"{n.id}:{n.state()}" for n in self.nodes)
        if len(args) != 1:
            raise ValueError(f"usage: {cmd} NODE")
        n = self.node(args[0])
        with self.lock:
            if cmd == "pid":
                return f"OK {n.proc.pid}"
            if cmd in ("stop", "cont"):
                if n.state() == "exited":
                    raise ValueError(f"node {n.id} is not running")
                n.proc.send_signal(signal.SIGSTOP if cmd == "stop" else signal.SIGCONT)
                return f"OK {cmd}"
            if cmd in ("kill", "down"):
                n.signal_and_wait(signal.SIGKILL, 10)
                return f"OK {cmd}"
            if cmd == "term":
                n.signal_and_wait(signal.SIGTERM, 60)
                return "OK term"
            if cmd in ("start", "up"):
                if n.state() != "exited":
                    raise ValueError(f"node {n.id} is running")
                since = (n.dir / "kafka.log").stat().st_size
                self.in_main(n.start)
                self.wait_registered(n, since, 90)
                return f"OK {cmd}"
        raise ValueError(f"unknown command {cmd}")

    def stop(self):
        for n in self.nodes:
            if n.proc is not None and n.proc.poll() is None:
                n.proc.send_signal(signal.SIGCONT)
                n.proc.kill()
        for n in self.nodes:
            if n.proc is not None:
                n.proc.wait()


def cluster_id_b64():
    """A KRaft cluster id: 16 random bytes in URL-safe base64, unpadded."""
    import base64
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dir", required=True, help="where configs, data and logs go")
    ap.add_argument("--jars", required=True, help="the Kafka jars (deploy/kafka/fetch-jars)")
    ap.add_argument("--nodes", type=int, default=3)
    ap.add_argument("--control-port", type=int, default=0)
    ap.add_argument("--partitions", type=int, default=12,
                    help="partitions of each contract topic")
    ap.add_argument("--no-topics", action="store_true",
                    help="skip the contract's topics and their ACLs")
    args = ap.parse_args()

    cluster = Cluster(args)
    signal.signal(signal.SIGTERM, lambda s, f: sys.exit(143))
    signal.signal(signal.SIGINT, lambda s, f: sys.exit(130))
    try:
        cluster.setup()
        env = {"JARS": str(cluster.jars), "ADMIN_CONFIG": str(cluster.admin_config),
               "JAVA": os.environ.get("JAVA", "java")}
        if not args.no_topics:
            started = time.monotonic()
            subprocess.run([HERE / "topics.sh", cluster.sasl_bootstrap, str(args.partitions)],
                           check=True, env={**os.environ, **env}, stdout=sys.stderr)
            subprocess.run([HERE / "worker-acls.sh", cluster.sasl_bootstrap, "User:worker",
                            "publish-worker"],
                           check=True, env={**os.environ, **env}, stdout=sys.stderr)
            log(f"contract topics and the worker's ACLs in {time.monotonic() - started:.1f}s")
        port = cluster.serve(args.control_port)
        info = {
            "BOOTSTRAP": cluster.bootstrap,
            "SASL_BOOTSTRAP": cluster.sasl_bootstrap,
            "CA": str(cluster.ca),
            "ADMIN_CONFIG": str(cluster.admin_config),
            "JARS": str(cluster.jars),
            "WORKER_USER": "worker",
            "WORKER_PASSWORD": cluster.users["worker"],
            "VERSION": cluster.version,
            "CONTROL": f"127.0.0.1:{port}",
        }
        (cluster.dir / "cluster.json").write_text(json.dumps(info, indent=2) + "\n")
        for k, v in info.items():
            print(f"{k} {v}", flush=True)
        cluster.serve_main_jobs()
    finally:
        cluster.stop()
        for n in cluster.nodes:
            shutil.rmtree(n.data, ignore_errors=True)


if __name__ == "__main__":
    main()
