#!/usr/bin/env python3
"""An example consumer of Switchboard's events (docs/EVENTS.md), with pika.

It declares its own durable quorum queue, binds it to the events exchange with one or more
topic patterns, and handles each event once:

* duplicates (at-least-once delivery, or a replay from the events log) are recognised by the
  CloudEvents `id` and skipped;
* per ticket (`subject`) it keeps the last `sequence` handled: a lower one is an older state
  that arrived late (after a redelivery) and is skipped; a jump over missing numbers is
  reported, since those events were filtered out by the binding or are still on their way;
* it acks an event only after handling it, so a crash means a redelivery, never a loss.

Here "handling" is printing one line per event. A real consumer keeps `seen` and `last` in its
own database, in the same transaction as the effect of the event, so they survive restarts.

Usage:
    event_consumer.py [--url URL] [--exchange switchboard.events] [--queue my-app.events]
                      [--bind 'ticket.#' ...] [--idle SECONDS]

With --idle it stops once no event came for that many seconds (a one-off catch-up, or a test);
without it, it runs until Ctrl-C. To catch up on events from before the queue existed:
    switchboard events replay --since 2h --to-queue my-app.events

Needs pika (python3 -m pip install pika).
"""

import argparse
import collections
import json
import sys

import pika


class Handler:
    """Dedupe by id, order by each ticket's sequence."""

    def __init__(self, remember=100_000):
        self.seen = set()
        self.order = collections.deque()
        self.remember = remember
        self.last = {}
        self.handled = 0
        self.duplicates = 0
        self.stale = 0

    def __call__(self, body):
        event = json.loads(body)
        event_id = event["id"]
        if event_id in self.seen:
            self.duplicates += 1
            print(f"duplicate {event_id} (already handled)")
            return
        ticket = event.get("subject")
        # The CloudEvents sequence extension: a zero-padded string ("0000000004").
        sequence = event.get("sequence")
        if sequence is not None:
            sequence = int(sequence)
            last = self.last.get(ticket, 0)
            if sequence <= last:
                self.stale += 1
                print(f"stale {event_id}: sequence {sequence} after {last}, an older state arrived late")
                self.remember_id(event_id)
                return
            if sequence > last + 1 and last > 0:
                print(
                    f"gap before {event_id}: sequences {last + 1}..{sequence - 1} not seen "
                    "(filtered out by the binding, or still on their way)"
                )
            self.last[ticket] = sequence
        # The event's effect goes here; this example prints it.
        print(f"event {event_id} {event['type']} ticket {ticket} sequence {sequence}")
        self.handled += 1
        self.remember_id(event_id)

    def remember_id(self, event_id):
        self.seen.add(event_id)
        self.order.append(event_id)
        if len(self.order) > self.remember:
            self.seen.discard(self.order.popleft())


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="amqp://guest:guest@127.0.0.1:5672/%2f", help="the broker")
    parser.add_argument("--exchange", default="switchboard.events", help="the events exchange")
    parser.add_argument("--queue", default="example.events", help="this consumer's own queue")
    parser.add_argument(
        "--bind",
        action="append",
        help="a topic pattern to bind with (repeatable): ticket.#, ticket.resolved, sla.* (default ticket.#)",
    )
    parser.add_argument("--prefetch", type=int, default=100, help="unacked events held at once")
    parser.add_argument("--idle", type=float, help="stop after this many seconds without an event")
    args = parser.parse_args()

    connection = pika.BlockingConnection(pika.URLParameters(args.url))
    channel = connection.channel()
    # A quorum queue: replicated on a cluster, and durable, so events wait while we are down.
    channel.queue_declare(args.queue, durable=True, arguments={"x-queue-type": "quorum"})
    for pattern in args.bind or ["ticket.#"]:
        channel.queue_bind(args.queue, args.exchange, routing_key=pattern)
    channel.basic_qos(prefetch_count=args.prefetch)

    handle = Handler()
    try:
        for method, _properties, body in channel.consume(args.queue, inactivity_timeout=args.idle):
            if method is None:  # --idle passed with nothing new
                break
            try:
                handle(body)
            except (ValueError, KeyError) as e:
                # Not an event we understand: set it aside rather than retry it for ever.
                print(f"rejected delivery {method.delivery_tag}: {e}", file=sys.stderr)
                channel.basic_reject(method.delivery_tag, requeue=False)
                continue
            sys.stdout.flush()
            channel.basic_ack(method.delivery_tag)
    except KeyboardInterrupt:
        pass
    finally:
        channel.cancel()
        print(
            f"handled {handle.handled} events, skipped {handle.duplicates} duplicates "
            f"and {handle.stale} stale"
        )
        connection.close()


if __name__ == "__main__":
    main()
