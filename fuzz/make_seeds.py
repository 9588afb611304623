"""Writes the seed corpora: real Celery 5.7 envelopes from the wire capture, decoded-body variants, handmade edge cases, valid arguments of every job, session documents and page addresses.

Usage: python3 fuzz/make_seeds.py CAPTURE   (a capture of Celery 5 messages, as celery_wire_samples.txt)
Seeds are named seed-*; files libFuzzer adds are named by their SHA-1. Run once; `cargo fuzz cmin`
keeps what adds coverage.
"""

import base64
import hashlib
import json
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
if len(sys.argv) != 2:
    sys.exit(__doc__)
CAPTURE = sys.argv[1]


def write(target, name, data):
    if isinstance(data, (dict, list)):
        data = json.dumps(data)
    if isinstance(data, str):
        data = data.encode()
    path = os.path.join(HERE, "corpus", target, "seed-" + name)
    with open(path, "wb") as f:
        f.write(data)


def b64(value):
    return base64.b64encode(json.dumps(value).encode()).decode()


# 1. Every envelope Celery wrote in the capture (list values, `unacked` hash fields, MONITOR
#    payloads), exactly as written, deduplicated.
envelopes = []
seen = set()
with open(CAPTURE, encoding="utf-8") as f:
    for line in f:
        line = line.strip()
        raw = None
        if line.startswith("RAW: {"):
            raw = line[len("RAW: "):]
        elif line.startswith("envelope: {"):
            raw = line[len("envelope: "):]
        elif line.startswith("FIELD ") and " => [{" in line:
            raw = json.dumps(json.loads(line.split(" => ", 1)[1])[0])
        if raw is None:
            continue
        json.loads(raw)  # a whole envelope, not a cut one
        if raw not in seen:
            seen.add(raw)
            envelopes.append(raw)
for i, raw in enumerate(envelopes):
    env = json.loads(raw)
    job = env["headers"]["task"].rsplit(".", 1)[-1]
    write("celery_envelope", f"wire-{i:02}-{job}.json", raw)
    # The same envelope with its body decoded (the harness re-encodes it).
    env["body"] = json.loads(base64.b64decode(env["body"]))
    write("celery_envelope", f"wire-{i:02}-{job}-decoded-body.json", env)

# 2. Handmade edge cases, built on the first captured envelope.
base = json.loads(envelopes[0])
embed = {"callbacks": None, "errbacks": None, "chain": None, "chord": None}


def variant(name, body=None, headers=None, props=None, top=None, drop_headers=()):
    env = json.loads(json.dumps(base))
    if body is not None:
        env["body"] = body
    env["headers"].update(headers or {})
    for h in drop_headers:
        env["headers"].pop(h, None)
    env["properties"].update(props or {})
    env.update(top or {})
    write("celery_envelope", f"edge-{name}.json", env)


variant("plain-body", body=json.dumps([["fp-plain"], {}, embed]), props={"body_encoding": "utf-8"})
variant("kwargs-only", body=b64([[], {"fingerprint": "fp-kw", "source": "mw"}, embed]))
variant("args-and-kwargs-collide", body=b64([["fp-a"], {"fingerprint": "fp-b"}, embed]))
variant("too-many-args", body=b64([["fp", "x", "y"], {}, embed]))
variant("null-args-kwargs", body=b64([None, None, None]))
variant("empty-body-list", body=b64([]))
variant("args-not-list", body=b64(["fp", {}, embed]))
variant("kwargs-not-object", body=b64([[], [], embed]))
variant("body-not-list", body=b64({"args": []}))
variant("bad-base64", body="!!not base64!!")
variant("base64-with-newlines", body=b64([["fp-nl"], {}, embed])[:20] + "\n" + b64([["fp-nl"], {}, embed])[20:])
variant("eta-naive", headers={"eta": "2026-11-26T15:06:01.591010"})
variant("eta-offset", headers={"eta": "2026-11-26T15:06:01+05:30", "expires": "2026-11-27T00:00:00Z"})
variant("eta-bad", headers={"eta": "tomorrow"})
variant("eta-number", headers={"eta": 1795703762.9})
variant("expires-past", headers={"expires": "2001-01-01T00:00:00+00:00"})
variant("redelivered-header", headers={"redelivered": True, "retries": 3})
variant("redelivered-delivery-info", props={"delivery_info": {"exchange": "", "routing_key": "celery", "redelivered": True}})
variant("retries-huge", headers={"retries": 10**20})
variant("retries-negative", headers={"retries": -1})
variant("ignore-result", headers={"ignore_result": True})
variant("pickle", top={"content-type": "application/x-python-serialize"})
variant("msgpack", top={"content-type": "application/x-msgpack"})
variant("no-content-type", top={"content-type": None})
variant("task-empty", headers={"task": ""})
variant("task-not-string", headers={"task": 5})
variant("task-no-dots", headers={"task": "persist_anonymous_session"})
variant("id-missing", drop_headers=("id",))
variant("unknown-task", headers={"task": "analytics.tasks.nope"})
variant("finalize-uuid", headers={"task": "analytics.tasks.finalize_anonymous_session"},
        body=b64([["fp-fin", "6f1c2b1e-1f6e-4b7e-9a55-0f5e3a1c2d3e"], {}, embed]))
variant("link-conversion", headers={"task": "analytics.tasks.link_anonymous_conversion"},
        body=b64([["0b7c3f7e-3c1a-4a53-9b2e-6e2a9f1d4c11", "fp-link"], {}, embed]))
variant("cleanup-positional", headers={"task": "analytics.tasks.cleanup_old_anonymous_data"},
        body=b64([[30], {}, embed]))
variant("enhance", headers={"task": "analytics.tasks.enhance_session_async"},
        body=b64([["sess-abc"], {}, embed]))
# Protocol 1: no task header; the body is a dict.
write("celery_envelope", "edge-protocol1.json", {
    "body": b64({"task": "analytics.tasks.persist_anonymous_session", "id": "p1-id", "args": ["fp-v1"],
                 "kwargs": {}, "eta": None, "expires": None, "retries": 0}),
    "content-type": "application/json", "content-encoding": "utf-8", "headers": {},
    "properties": {"body_encoding": "base64", "delivery_info": {"exchange": "", "routing_key": "celery"}},
})
write("celery_envelope", "edge-protocol1-plain.json", {
    "body": json.dumps({"task": "analytics.tasks.aggregate_page_analytics", "id": "p1-plain", "args": [],
                        "kwargs": {"date": "2024-06-01"}, "eta": "2024-06-01T00:00:00"}),
    "content-type": "application/json"})
write("celery_envelope", "edge-minimal.json", {"body": "[[\"fp\"],{},{}]", "headers": {"task": "t.persist_anonymous_session", "id": "1"}})
for name, data in [("garbage", b"\x00\xffgarbage"), ("null", b"null"), ("array", b"[]"), ("empty-object", b"{}"),
                   ("deep", b"[" * 200 + b"]" * 200)]:
    write("celery_envelope", f"edge-{name}", data)

# 3. Valid arguments of every job, a few invalid ones, and Celery positional lists.
uid = "6f1c2b1e-1f6e-4b7e-9a55-0f5e3a1c2d3e"
args = {
    "persist": {"fingerprint": "fp-3f2a9c"},
    "persist-extra": {"fingerprint": "fp-quick", "source": "mw"},
    "finalize": {"fingerprint": "fp-eta", "session_id": uid},
    "cleanup-default": {},
    "cleanup": {"retention_days": 90},
    "cleanup-zero": {"retention_days": 0},
    "cleanup-negative": {"days": -1, "retention_days": -1},
    "aggregate": {"date": "2024-06-01"},
    "aggregate-future": {"date": "2999-01-01"},
    "aggregate-null": {"date": None},
    "idle": {},
    "enhance": {"session_id": "sess-abc"},
    "link": {"user_id": "0b7c3f7e-3c1a-4a53-9b2e-6e2a9f1d4c11", "fingerprint": "fp-link"},
    "fingerprint-space": {"fingerprint": "fp with space"},
    "fingerprint-long": {"fingerprint": "f" * 129},
    "positional-persist": ["fp-pos"],
    "positional-finalize": ["fp-pos", uid],
    "positional-link": ["0b7c3f7e-3c1a-4a53-9b2e-6e2a9f1d4c11", "fp-pos"],
    "positional-cleanup": [30],
    "positional-aggregate": ["2024-06-01"],
}
for name, value in args.items():
    write("job_arguments", f"args-{name}.json", value)
# The Redis session document (the test seed's and what anon.lua writes) and a buffered view.
write("job_arguments", "doc-seed.json", {
    "session_id": uid, "device_fingerprint": "a1b2", "started_at": "2025-10-10T14:00:00Z",
    "last_activity": 1760105700, "pages_visited": 8, "current_page": "/c/",
    "landing_page": "/search?q=events", "referrer": None, "is_active": True})
write("job_arguments", "doc-lua.json", {
    "session_id": uid, "device_fingerprint": "fp-lua", "started_at": "2026-11-26T14:36:00.123456Z",
    "pages_visited": 3, "landing_page": "/", "referrer": "https://example.org/", "is_active": True,
    "user_agent": "Mozilla/5.0", "device_type": "desktop", "browser": "Firefox", "os": "Linux",
    "is_bot": False, "ip_address": "203.0.113.45", "last_activity": "2026-11-26T14:40:00.000001Z",
    "current_page": "/c/montreal/?tab=events"})
write("job_arguments", "doc-naive-times.json", {
    "session_id": uid, "device_fingerprint": "fp", "started_at": "2025-10-10T14:00:00.5",
    "last_activity": 1760105700.25})
write("job_arguments", "view.json", {
    "session_id": uid, "url": "/c/", "url_name": "community", "page_type": "community",
    "viewed_at": "2026-11-26T14:36:00.123456Z", "referrer": ""})
write("job_arguments", "time-rfc3339", "2026-11-26T15:06:01.591010+00:00")

# 4. Page addresses.
for i, url in enumerate([
    "/", "/c/montreal/?tab=events#top", "https://example.org/a/b?q=1", "http://example.org",
    "http://example.org?x", "https://example.org#frag", "https:///nohost", "//evil.example/x",
    "ftp://x/y", "javascript:alert(1)", "/a b", "example.org/x", "/é/ü?ß", "", "/" + "a" * 2047,
    "https://example.org//evil.example/x",
]):
    write("url_path", f"url-{i:02}", url)
# 5. Drop libFuzzer's copies of seeds (after `cmin`, which names every file by its SHA-1).
for target in os.listdir(os.path.join(HERE, "corpus")):
    folder = os.path.join(HERE, "corpus", target)
    digest = {}
    for name in os.listdir(folder):
        with open(os.path.join(folder, name), "rb") as f:
            digest[name] = hashlib.sha1(f.read()).hexdigest()
    seeds = {d for n, d in digest.items() if n.startswith("seed-")}
    for name, d in digest.items():
        if not name.startswith("seed-") and d in seeds:
            os.remove(os.path.join(folder, name))
print(f"{len(envelopes)} captured envelopes")
