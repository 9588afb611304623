"""Celery's remote control against Celeriac's worker, with the real Celery client.

argv: broker_url queue result_backend phase fingerprints...
- revoke fp_countdown fp_pre fp_plain: revokes a countdown task after sending it
  (AsyncResult.revoke(), no reply) and a task before sending it (app.control.revoke, reply=True),
  sends a plain task, pings.
- resend fp_pre pre_id fp_plain: sends the revoked id again, and a plain task.
- send fp...: sends a plain task per fingerprint, and one that fails (bad arguments).
Waits first until the Celeriac node named by the environment's CELERIAC_NODE (a name prefix, e.g.
celeriac-1234@) answers ping: a broadcast sent before it subscribes is lost, and other tests'
workers may answer on the same Redis.
Prints one JSON line.
"""
import json
import os
import sys
import time
import uuid

from celery import Celery

broker, queue, backend, phase = sys.argv[1:5]
rest = sys.argv[5:]
app = Celery("analytics", broker=broker, backend=backend)
app.conf.update(task_serializer="json", accept_content=["json"], result_serializer="json",
                timezone="UTC", enable_utc=True, task_default_queue=queue)
PERSIST = "analytics.tasks.persist_anonymous_session"


NODE = os.environ.get("CELERIAC_NODE", "celeriac-")


def celeriac(replies):
    return [r for r in replies or [] if any(n.startswith(NODE) for n in r)]


deadline = time.time() + 30
pings = []
while time.time() < deadline:
    pings = celeriac(app.control.ping(timeout=1))
    if pings:
        break
if not pings:
    sys.exit("no Celeriac worker answered ping")

ids = {}
out = {"ids": ids, "pings": pings}
if phase == "revoke":
    fp_countdown, fp_pre, fp_plain = rest
    ids["countdown"] = app.send_task(PERSIST, args=[fp_countdown], countdown=3, queue=queue).id
    app.AsyncResult(ids["countdown"]).revoke()
    ids["pre"] = str(uuid.uuid4())
    out["revoke_replies"] = celeriac(app.control.revoke(ids["pre"], reply=True, timeout=2))
    app.send_task(PERSIST, args=[fp_pre], task_id=ids["pre"], queue=queue)
    ids["plain"] = app.send_task(PERSIST, args=[fp_plain], queue=queue).id
elif phase == "resend":
    fp_pre, pre_id, fp_plain = rest
    app.send_task(PERSIST, args=[fp_pre], task_id=pre_id, queue=queue)
    ids["plain"] = app.send_task(PERSIST, args=[fp_plain], queue=queue).id
elif phase == "send":
    ids["plain"] = [app.send_task(PERSIST, args=[fp], queue=queue).id for fp in rest]
    ids["failing"] = app.send_task(PERSIST, args=[""], queue=queue).id
else:
    sys.exit(f"unknown phase {phase}")
print(json.dumps(out))
