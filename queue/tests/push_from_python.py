"""Push jobs into a Celeriac queue from Python, exactly as docs/queue.md describes.

Usage: python3 push_from_python.py REDIS_URL NAMESPACE QUEUE PATH_TO_push.lua

Three jobs go through queue/lua/push.lua (EVALSHA, loaded on NOSCRIPT), two through plain
commands. Prints {"lua": [ids], "plain": [ids], "duplicate_of": id} as JSON.
"""

import json
import sys
import uuid

import redis


def new_id():
    # Any unique 1-64 characters of [0-9A-Za-z_-].
    return "py-" + uuid.uuid4().hex


def main():
    url, namespace, queue, lua_path = sys.argv[1:5]
    r = redis.Redis.from_url(url)
    base = f"{namespace}:{{{queue}}}"  # the braces are the hash tag: every key in one slot
    pending, scheduled, jobs = f"{base}:pending", f"{base}:scheduled", f"{base}:jobs"
    done, dead = f"{base}:done", f"{base}:dead"
    notify = f"{base}:notify"

    with open(lua_path) as f:
        push = r.register_script(f.read())  # EVALSHA, falling back to SCRIPT LOAD + EVALSHA

    # One call, two jobs to run now; the second carries a uniqueness key (KEYS[6]) for 60 s.
    # ARGV: notify channel, count, then per job: id, payload, due, unique KEYS index, unique ttl ms.
    a, b = new_id(), new_id()
    reply = push(
        keys=[pending, scheduled, jobs, done, dead, f"{base}:unique:report-42"],
        args=[
            notify, 2,
            a, json.dumps({"n": 1, "from": "python-lua"}), "", 0, 0,
            b, json.dumps({"n": 2, "from": "python-lua"}), "", 6, 60000,
        ],
    )
    assert [x.decode() if isinstance(x, bytes) else x for x in reply] == [a, 1, b, 1], reply

    # The same uniqueness key again within its TTL: dropped, and the reply names the first job.
    dup = new_id()
    reply = push(
        keys=[pending, scheduled, jobs, done, dead, f"{base}:unique:report-42"],
        args=[notify, 1, dup, json.dumps({"n": 99, "from": "duplicate"}), "", 6, 60000],
    )
    assert [x.decode() if isinstance(x, bytes) else x for x in reply] == [b, 0], reply

    # A job that may run 200 ms from now ("+ms"; an absolute epoch-ms time works too).
    c = new_id()
    reply = push(
        keys=[pending, scheduled, jobs, done, dead],
        args=[notify, 1, c, json.dumps({"n": 3, "from": "python-lua"}), "+200", 0, 0],
    )
    assert reply[1] == 1, reply

    # Plain commands: the stored value is "<epoch ms>|<payload JSON>", taken from Redis' clock.
    plain = []
    for n in (4, 5):
        seconds, micros = r.time()
        now_ms = seconds * 1000 + micros // 1000
        job_id = new_id()
        payload = json.dumps({"n": n, "from": "python-plain"})
        with r.pipeline(transaction=True) as p:  # MULTI/EXEC: both or neither
            p.hset(jobs, job_id, f"{now_ms}|{payload}")
            p.rpush(pending, job_id)
            p.publish(notify, "1")
            p.execute()
        plain.append(job_id)

    print(json.dumps({"lua": [a, b, c], "plain": plain, "duplicate_of": b}))


if __name__ == "__main__":
    main()
