"""Sends tasks the way Django's call sites do, with the real Celery client, and waits for results.

argv: broker_url queue result_backend fingerprint session_id(for finalize) user_id
Prints one JSON line: {"ids": {...}, "results": {...}}.
"""
import json
import sys
from datetime import datetime, timedelta, timezone

from celery import Celery

broker, queue, backend, fp, fp2, fp3 = sys.argv[1:7]
app = Celery("analytics", broker=broker, backend=backend)
app.conf.update(task_serializer="json", accept_content=["json"], result_serializer="json",
                timezone="UTC", enable_utc=True, task_default_queue=queue)

persist = app.signature("analytics.tasks.persist_anonymous_session")
ids = {}
# send_task with positional args, as Django's .delay(fp) does.
ids["positional"] = app.send_task("analytics.tasks.persist_anonymous_session", args=[fp], queue=queue).id
# apply_async with keyword args and a countdown.
ids["countdown"] = app.send_task("analytics.tasks.persist_anonymous_session", kwargs={"fingerprint": fp2},
                                 countdown=2, queue=queue).id
# a priority message goes to the priority sub-list.
ids["priority"] = app.send_task("analytics.tasks.persist_anonymous_session", args=[fp3], priority=6, queue=queue).id
# already expired.
ids["expired"] = app.send_task("analytics.tasks.persist_anonymous_session", args=[fp],
                               expires=datetime.now(timezone.utc) - timedelta(seconds=5), queue=queue).id
# unknown task and bad arguments.
ids["unknown"] = app.send_task("analytics.tasks.no_such_task", args=[1], queue=queue).id
ids["bad_args"] = app.send_task("analytics.tasks.persist_anonymous_session", args=[""], queue=queue).id
# another serializer.
ids["pickle"] = app.send_task("analytics.tasks.persist_anonymous_session", args=[fp], serializer="pickle",
                              queue=queue).id

results = {}
for name in ["positional", "countdown", "priority"]:
    r = app.AsyncResult(ids[name])
    value = r.get(timeout=30)
    results[name] = {"status": r.status, "value": value}
for name in ["unknown", "bad_args"]:
    r = app.AsyncResult(ids[name])
    try:
        r.get(timeout=30)
        results[name] = {"status": r.status}
    except Exception as e:  # the FAILURE document raises
        results[name] = {"status": r.status, "error": type(e).__name__}
print(json.dumps({"ids": ids, "results": results}))
