"""What every fault test checks once its fault is over, in one place.

A FaultRun is one test's posts: its accounts (connected with `token put`),
its requests (a few per account, interleaved across accounts, each with a
text of its own that names its post id) and an observer thread that reads
the results topic and samples the group's committed offsets while the fault
happens. After the fault, FaultRun.check() asserts:

- every request got at least one result; every result validates against
  schemas/publish.result.v1.json, carries its request's ids, is keyed by its
  account, holds no token and has a status the test allows; no result was
  produced twice for one delivery (two byte-identical messages);
- the fake Threads API published each post at most once (and
  `double_publish_attempts` is 0); a post answered `published` or `duplicate`
  was published exactly once, under the media id its results name; a post
  answered only `failed` or `parked` was not published; per account, the
  publications follow the request order;
- nothing was committed past an unanswered request: at every sample, each
  request below the group's committed offset of its partition had a result.
  A sample reads the committed offsets first, then the results topic up to
  its high watermarks as they stood after that read: results come before
  commits, so any request the sample finds below the committed offset
  without a result was committed unanswered.
"""
import json
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, TopicPartition

from harness import produce_many
from posts import RESULT_SCHEMA, connect_account, request

ANSWERED_OK = {"published", "duplicate"}


class Observer(threading.Thread):
    """Reads the results topic from the start and checks the group's commits
    against it, every `interval` seconds until stopped. Its state is read
    under `lock`."""

    def __init__(self, bootstrap, topics, interval=0.3):
        super().__init__(daemon=True, name="fault-observer")
        self.topics, self.interval = topics, interval
        self.lock = threading.Lock()
        self.raw = []                # every result message's value (bytes), in arrival order
        self.answered = set()        # event ids with at least one result
        self.requests = {}           # partition -> [(offset, event_id)], ascending
        self.violations = []         # commits past an unanswered request
        self.samples = 0             # commit samples checked
        self.skipped = 0             # samples Kafka did not answer (a broker down...)
        self.error = None            # an exception that stopped the thread
        self._halt = threading.Event()
        common = {"bootstrap.servers": bootstrap, "enable.auto.commit": False,
                  "log_level": 2}  # brokers taken down on purpose are no news
        self._results = Consumer({**common, "group.id": f"observer-{uuid.uuid4()}",
                                  "auto.offset.reset": "earliest", "fetch.wait.max.ms": 20})
        # Same group id, never subscribed: it only asks for the group's offsets.
        self._group = Consumer({**common, "group.id": topics["group_id"]})
        meta = self._results.list_topics(timeout=10).topics
        self._result_parts = sorted(meta[topics["results"]].partitions)
        self._request_parts = sorted(meta[topics["requests"]].partitions)
        self._results.assign([TopicPartition(topics["results"], p, OFFSET_BEGINNING)
                              for p in self._result_parts])
        self._next = {p: 0 for p in self._result_parts}  # next offset to read per partition

    def add_requests(self, acked):
        """acked: [(event_id, partition, offset)] of produced requests."""
        with self.lock:
            for event_id, partition, offset in acked:
                self.requests.setdefault(partition, []).append((offset, event_id))
                self.requests[partition].sort()

    def run(self):
        try:
            while not self._halt.is_set():
                self._sample()
                self._halt.wait(self.interval)
        except Exception as e:  # surfaced by check()
            self.error = e
        finally:
            self._results.close()
            self._group.close()

    def stop(self):
        self._halt.set()
        self.join(30)

    def _read(self, highs, timeout):
        """Reads results until every partition reached highs (None: whatever
        arrives within timeout). Returns True when highs were reached."""
        deadline = time.monotonic() + timeout
        while True:
            if highs is not None and all(self._next[p] >= highs[p] for p in highs):
                return True
            if time.monotonic() >= deadline:
                return highs is None
            msg = self._results.poll(0.1)
            if msg is None or msg.error():
                continue
            value = msg.value()
            with self.lock:
                self.raw.append(value)
                try:
                    self.answered.add(json.loads(value).get("event_id"))
                except (ValueError, AttributeError):
                    pass  # check() reports it
            self._next[msg.partition()] = msg.offset() + 1

    def _sample(self):
        tps = [TopicPartition(self.topics["requests"], p) for p in self._request_parts]
        try:
            committed = {tp.partition: tp.offset for tp in self._group.committed(tps, timeout=5)}
            highs = {p: self._results.get_watermark_offsets(
                TopicPartition(self.topics["results"], p), timeout=5)[1]
                for p in self._result_parts}
        except KafkaException:
            self.skipped += 1
            self._read(None, 0.5)
            return
        if not self._read(highs, 10):
            self.skipped += 1
            return
        with self.lock:
            for partition, offset in committed.items():
                for req_offset, event_id in self.requests.get(partition, []):
                    if req_offset >= offset:
                        break
                    if event_id not in self.answered:
                        self.violations.append(
                            f"partition {partition} committed at {offset} while the request at "
                            f"offset {req_offset} (event {event_id}) had no result")
                        break
            self.samples += 1

    def wait_samples(self, n, timeout=30):
        """Waits until n more samples were checked after this call."""
        with self.lock:
            target = self.samples + n
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.is_alive():
            with self.lock:
                if self.samples >= target:
                    return
            time.sleep(0.05)
        raise AssertionError(f"the observer checked no new commit sample within {timeout}s "
                             f"({self.skipped} skipped, error {self.error!r})")


class FaultRun:
    """One fault test's accounts, requests and observer (see the module's
    docstring). Made by the `fault_run` fixture, which stops the observer."""

    def __init__(self, kafka_bootstrap, topics, fake):
        self.bootstrap, self.topics, self.fake = kafka_bootstrap, topics, fake
        self.users = {}       # account -> Threads user id
        self.reqs = []        # every request, in produce order
        self.observer = None

    def connect(self, run_cli, env, accounts):
        """Connects each account (token put against the fake API)."""
        with ThreadPoolExecutor(4) as pool:  # token put is a process each: overlap them
            users = pool.map(lambda a: connect_account(run_cli, env, self.fake, a)[0], accounts)
            self.users.update(zip(accounts, users))
        return self

    def make_requests(self, per_account, media=lambda account_index, i: "TEXT"):
        """per_account requests for every connected account, interleaved
        (first post of each account, then the second...); media(account
        index, post index) picks each post's media type."""
        out = []
        for i in range(per_account):
            for a, account in enumerate(self.users):
                post_id = f"{account}-p{i}-{uuid.uuid4().hex[:6]}"
                out.append(request(account, post_id=post_id, media_type=media(a, i),
                                   text=f"{post_id} #{i}"))
        return out

    def produce(self, reqs):
        """Produces reqs (keyed by account) and tells the observer where they
        landed; starts the observer on first use."""
        acks = produce_many(self.bootstrap, self.topics["requests"],
                            [(r["account_id"], r) for r in reqs])
        self.reqs += reqs
        if self.observer is None:
            self.observer = Observer(self.bootstrap, self.topics)
            self.observer.start()
        self.observer.add_requests([(r["event_id"], p, o) for r, (p, o) in zip(reqs, acks)])
        return acks

    def post_ids(self, accounts):
        return {r["post_id"] for r in self.reqs if r["account_id"] in accounts}

    def answered(self):
        with self.observer.lock:
            return sum(r["event_id"] in self.observer.answered for r in self.reqs)

    def published(self):
        return self.fake.stats()["publications_total"]

    def wait_answered(self, timeout=60, workers=()):
        """Waits until every request has at least one result."""
        deadline = time.monotonic() + timeout
        while self.answered() < len(self.reqs):
            if self.observer.error:
                raise self.observer.error
            if time.monotonic() >= deadline:
                tails = "\n".join(f"--- {w.log_path.name}\n{w.tail(15)}" for w in workers)
                pytest.fail(f"{self.answered()} of {len(self.reqs)} requests answered within "
                            f"{timeout}s ({self.published()} published):\n{tails}")
            time.sleep(0.2)

    def results(self):
        """Every result so far, parsed: [dict]."""
        with self.observer.lock:
            raw = list(self.observer.raw)
        return [json.loads(v) for v in raw]

    def check(self, allowed=ANSWERED_OK, failed=(), parked=(), settle_s=1.0):
        """The invariants after the fault (module docstring). failed and
        parked: post ids that must end so, not published; every other post
        must be published exactly once. Returns a summary for the test's log."""
        obs = self.observer
        time.sleep(settle_s)  # late results (a redelivery's duplicate) count too
        obs.wait_samples(2)
        if obs.error:
            raise obs.error
        failed, parked = set(failed), set(parked)
        stats = self.fake.stats()
        with obs.lock:
            raw = list(obs.raw)
            violations = list(obs.violations)
            samples, skipped = obs.samples, obs.skipped

        # Results: schema, ids, statuses, one per delivery.
        copies = [v for v, n in Counter(raw).items() if n > 1]
        assert not copies, f"{len(copies)} results produced twice, e.g. {copies[0]!r}"
        by_event = {r["event_id"]: r for r in self.reqs}
        by_post = {}
        for value in raw:
            res = json.loads(value)
            RESULT_SCHEMA.validate(res)
            assert "THAA" not in value.decode(), "a token in a result"
            req = by_event.get(res["event_id"])
            assert req, f"a result for no request of this test: {res}"
            assert (res["post_id"], res["account_id"]) == (req["post_id"], req["account_id"]), res
            assert res["status"] in allowed, f"status {res['status']} not in {allowed}: {res}"
            by_post.setdefault(res["post_id"], []).append(res)
        missing = [r["post_id"] for r in self.reqs if r["post_id"] not in by_post]
        assert not missing, f"{len(missing)} requests unanswered: {missing[:5]}"

        # Publications: at most once, exactly once when answered so, in order.
        assert stats["double_publish_attempts"] == 0, stats["double_publish_attempts"]
        text_to_post = {r["post"]["text"]: r["post_id"] for r in self.reqs}
        pubs = {}  # post id -> [media ids]
        for account, user in self.users.items():
            order = []
            for pub in stats["publications"].get(user, []):
                post_id = text_to_post.get(pub["text"])
                assert post_id, f"{account}: published a text of no request: {pub}"
                pubs.setdefault(post_id, []).append(pub["media_id"])
                order.append(post_id)
            twice = [p for p, n in Counter(order).items() if n > 1]
            assert not twice, f"{account}: published twice: {twice}"
            expected = [r["post_id"] for r in self.reqs
                        if r["account_id"] == account and r["post_id"] in order]
            assert order == expected, f"{account}: published out of request order"
        for req in self.reqs:
            post_id = req["post_id"]
            answers = by_post[post_id]
            statuses = [a["status"] for a in answers]
            published_answers = [a for a in answers if a["status"] in ANSWERED_OK]
            assert statuses.count("published") <= 1, f"{post_id}: {statuses}"
            if post_id in failed or post_id in parked:
                want = "failed" if post_id in failed else "parked"
                assert want in statuses and not published_answers, f"{post_id}: {statuses}"
                assert post_id not in pubs, f"{post_id} answered {statuses} but published"
                continue
            assert published_answers, f"{post_id}: answered {statuses}, not published"
            assert len(pubs.get(post_id, [])) == 1, \
                f"{post_id}: answered {statuses}, published {len(pubs.get(post_id, []))} times"
            for a in published_answers:
                if a["status"] == "published" or a["media_id"] is not None:
                    assert a["media_id"] == pubs[post_id][0], (a, pubs[post_id])

        # Commits.
        assert not violations, "committed past unanswered requests:\n" + "\n".join(violations[:5])
        assert samples >= 2
        summary = {"requests": len(self.reqs), "results": len(raw),
                   "statuses": dict(Counter(json.loads(v)["status"] for v in raw)),
                   "published": sum(len(v) for v in pubs.values()),
                   "commit_samples": samples, "samples_skipped": skipped}
        print(f"fault run: {summary}")
        return summary

    def committed(self):
        """The group's committed offset of each requests partition now."""
        consumer = Consumer({"bootstrap.servers": self.bootstrap, "enable.auto.commit": False,
                             "group.id": self.topics["group_id"]})
        try:
            tps = [TopicPartition(self.topics["requests"], p)
                   for p in self.observer._request_parts]
            return {tp.partition: tp.offset for tp in consumer.committed(tps, timeout=10)}
        finally:
            consumer.close()

    def all_committed(self):
        """Whether every partition that got requests is committed to its end."""
        with self.observer.lock:
            ends = {p: reqs[-1][0] + 1 for p, reqs in self.observer.requests.items()}
        committed = self.committed()
        return all(committed[p] == end for p, end in ends.items()), (committed, ends)

    def check_all_committed(self):
        """After a graceful stop: every partition that got requests is
        committed to its end."""
        done, detail = self.all_committed()
        assert done, detail

    def close(self):
        if self.observer is not None:
            self.observer.stop()
