"""Depths of the Dramatiq queues (Redis broker), for the status page and
`/metrics`.

Per queue: `ready` (message ids waiting in the list `<ns>:<queue>`),
`total` (messages the broker holds for it, ready, delayed or being worked
on: the hashes `<ns>:<queue>.msgs` and `<ns>:<queue>.DQ.msgs`), `delayed`
(in the delay queue: retries waiting for their back-off) and `dead`
(dead-lettered: `<ns>:<queue>.XQ.msgs`). Empty when the broker is not the
Redis one.
"""

from __future__ import annotations

import dramatiq


def queue_depths(broker: dramatiq.Broker | None = None) -> list[dict]:
    if broker is None:
        # The web process declares the queues only once the actors are
        # imported (the workers import them at boot).
        from django.utils.module_loading import autodiscover_modules

        autodiscover_modules("tasks")
        broker = dramatiq.get_broker()
    client = getattr(broker, "client", None)
    namespace = getattr(broker, "namespace", None)
    if client is None or namespace is None:
        return []
    names = sorted(
        q for q in broker.get_declared_queues() if not q.endswith((".DQ", ".XQ"))
    )
    pipe = client.pipeline(transaction=False)
    for name in names:
        key = f"{namespace}:{name}"
        pipe.llen(key)
        pipe.hlen(f"{key}.msgs")
        pipe.hlen(f"{key}.DQ.msgs")
        pipe.hlen(f"{key}.XQ.msgs")
    values = pipe.execute()
    depths = []
    for i, name in enumerate(names):
        ready, msgs, delayed, dead = values[4 * i : 4 * i + 4]
        depths.append(
            {
                "queue": name,
                "ready": int(ready),
                "total": int(msgs) + int(delayed),
                "delayed": int(delayed),
                "dead": int(dead),
            }
        )
    return depths
