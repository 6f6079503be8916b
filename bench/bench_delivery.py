"""Alert delivery: what recording costs and how fast a worker delivers.

1. Recording: `alerts.services.alert_events_record` for batches of 50 fired
   alerts whose rules send to 0 channels (the toast only: the peer) and to 2
   webhook channels, including the digest bookkeeping (threshold raised so
   every alert is delivered singly). Reported per alert.
2. Delivering: 400 webhook deliveries through one Dramatiq worker (8
   threads, real Redis broker) to a local HTTP receiver: deliveries per
   second, and the same with one of the two channels answering after 2 s,
   showing the fast channel's deliveries are not held back by the slow one
   (its p50/p99 latency from record to receipt). Peer in the same run: one
   sender posting the same deliveries one after the other.

    python -m bench.bench_delivery [--quick]
"""

from __future__ import annotations

import argparse
import statistics
import time

from bench._django import setup


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    setup()
    from django.conf import settings

    settings.ALERT_WEBHOOK_ALLOW_PRIVATE = True
    settings.ALERT_DIGEST_THRESHOLD = 10**9
    settings.HISTORY_RECLAIM_EVERY = 0
    settings.ALERT_DELIVERY_TIMEOUT = 10.0

    import dramatiq
    from django.contrib.auth import get_user_model

    from alerts.channel_services import channel_create
    from alerts.models import AlertEvent, Delivery, DeliveryChannel
    from alerts.services import alert_events_record, alert_rule_create
    from alerts.transports import Message, channel_send
    from core.redis import redis_client
    from marketdata.models import Instrument
    from marketdata.services import instruments_upsert
    from marketdata.universe import universe_rows
    from tests.alerts.receivers import Answer, Receiver, fired

    batches = 4 if args.quick else 20
    deliveries = 100 if args.quick else 400
    redis_client().flushdb()
    if not Instrument.objects.filter(symbol="AAPL").exists():
        instruments_upsert(rows=universe_rows())
    User = get_user_model()
    User.objects.filter(username__startswith="bench-delivery").delete()
    aapl = Instrument.objects.get(symbol="AAPL")

    def rule_for(user, channels):
        return alert_rule_create(
            owner=user,
            instrument=aapl,
            kind="price",
            direction="above",
            level=150,
            cooldown_seconds=0,
            channels=channels,
        )

    print("1. recording (alert_events_record), batches of 50 alerts")
    with Receiver() as receiver:
        costs = {}
        for label, n_channels in (("toast only (peer)", 0), ("2 webhook channels", 2)):
            user = User.objects.create(username=f"bench-delivery-{n_channels}")
            channels = [
                channel_create(
                    owner=user, name=f"c{i}", kind="webhook", url=receiver.url
                )
                for i in range(n_channels)
            ]
            rule = rule_for(user, channels)
            times = []
            for b in range(batches):
                batch = [fired(rule, seconds=b * 50 + i) for i in range(50)]
                started = time.perf_counter()
                alert_events_record(fired=batch, send=False)
                times.append(time.perf_counter() - started)
            costs[label] = statistics.median(times) / 50 * 1e6
            print(f"   {label:<22} {costs[label]:8.0f} µs per alert (median batch)")
        extra = costs["2 webhook channels"] - costs["toast only (peer)"]
        print(
            f"   deliveries add {extra:.0f} µs per alert ({extra / 2:.0f} µs per row)"
        )
    redis_client().flushdb()  # the messages of part 1 are not part 2's
    Delivery.objects.all().delete()

    print(f"2. delivering {deliveries} webhook alerts (worker: 8 threads)")
    worker = dramatiq.Worker(
        dramatiq.get_broker(), queues={"alerts"}, worker_threads=8, worker_timeout=100
    )
    worker.start()
    try:
        for slow_delay in (0.0, 2.0):
            with Receiver() as fast, Receiver(default=Answer(delay=slow_delay)) as slow:
                user = User.objects.create(username=f"bench-delivery-run-{slow_delay}")
                a = channel_create(
                    owner=user, name="fast", kind="webhook", url=fast.url
                )
                b = channel_create(
                    owner=user, name="slow", kind="webhook", url=slow.url
                )
                rule = rule_for(user, [a, b])
                started = time.perf_counter()
                recorded = {}
                for i in range(0, deliveries // 2, 50):
                    for event in alert_events_record(
                        fired=[fired(rule, seconds=i + j) for j in range(50)],
                        send=False,
                    ):
                        recorded[str(event.pk)] = time.perf_counter()
                total = len(recorded) * 2
                while (
                    Delivery.objects.filter(owner=user, status="sent").count() < total
                ):
                    time.sleep(0.05)
                elapsed = time.perf_counter() - started
                latencies = sorted(
                    (f.requests_at[k] - recorded[k])
                    for f in (fast,)
                    for k in f.requests_at
                )
                name = (
                    "both fast"
                    if not slow_delay
                    else f"one channel {slow_delay:g} s slow"
                )
                print(
                    f"   {name:<24} {total / elapsed:7.0f} deliveries/s; fast channel "
                    f"latency p50 {latencies[len(latencies) // 2] * 1000:.0f} ms, "
                    f"p99 {latencies[int(len(latencies) * 0.99)] * 1000:.0f} ms"
                )
                if slow_delay:
                    # Peer: one sender, one delivery after the other.
                    sample = 10
                    started = time.perf_counter()
                    for channel in [b, a] * (sample // 2):
                        channel_send(channel=channel, message=Message("s", "t", {}))
                    per = (time.perf_counter() - started) / sample
                    print(
                        f"   peer: sequential sender   {1 / per:7.1f} deliveries/s "
                        f"(each fast one waits behind a {slow_delay:g} s one)"
                    )
    finally:
        worker.stop()
        DeliveryChannel.objects.filter(
            owner__username__startswith="bench-delivery"
        ).delete()
        AlertEvent.objects.filter(owner__username__startswith="bench-delivery").delete()
        User.objects.filter(username__startswith="bench-delivery").delete()


if __name__ == "__main__":
    main()
