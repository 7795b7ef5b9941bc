#!/usr/bin/env python3
"""AMQP conformance client: publishes one intake request per channel from a non-Rust client.

Usage: conformance_publish.py AMQP_URL EXCHANGE RUN_ID

The payloads are the examples of schemas/asyncapi.yaml (components.messages.IntakeRequest),
with RUN_ID appended to every id so that runs never collide. Each message is published the way
the contract says an integration must: routing key `intake.<channel>`, AMQP message_id =
channel_message_id, persistent (delivery_mode 2), content type application/json, mandatory,
and confirmed by the broker. json.dumps escapes non-ASCII as \\uXXXX, which the Rust side must
read like any other JSON. Prints the published channel_message_ids as a JSON list.

Driven by tests/conformance.rs; needs `pika` (python3 -m pip install pika).
"""

import json
import sys

import pika


def examples(run):
    """The asyncapi.yaml examples, made unique to this run."""
    return [
        {
            "channel": "phone",
            "channel_message_id": f"call-20261123-000187-{run}",
            "received_at": "2026-11-23T09:12:44+08:00",
            "customer": {"phone": "13812345678", "tier": "standard"},
            "subject": "IVR 2: 账户与支付",
            "body": "喂，你好，我那个银行卡被扣了两次钱，订单号是2024051088，麻烦帮我查一下",
        },
        {
            "channel": "chat",
            "channel_message_id": f"chat-msg-553201-{run}",
            "received_at": "2026-11-23T10:05:00+08:00",
            "customer": {"customer_id": "C202405001", "name": "王先生"},
            "body": "APP一直闪退，登不上去，怎么办",
            "thread_ref": f"chat:session-88123-{run}",
        },
        {
            "channel": "email",
            "channel_message_id": f"20261123.abc123-{run}@mail.example.com",
            "received_at": "2026-11-23T11:30:00+08:00",
            "customer": {"email": "zhang.san@example.com", "name": "张三", "tier": "enterprise"},
            "subject": "Re: 发票抬头修改",
            "body": "您好，发票抬头还是不对，请尽快重新开具。",
            "quoted_history": "在 2026-11-22 写道：……",
            "thread_ref": f"20261122.xyz-{run}@mail.example.com",
        },
        {
            "channel": "app",
            "channel_message_id": f"app-feedback-99812-{run}",
            "received_at": "2026-11-23T12:00:00+08:00",
            "customer": {"customer_id": "C998812", "phone": "13900001111", "tier": "vip"},
            "body": "Would be great if you added a dark mode to the app.",
        },
    ]


def main():
    if len(sys.argv) != 4:
        print(__doc__, file=sys.stderr)
        return 2
    url, exchange, run = sys.argv[1:]
    connection = pika.BlockingConnection(pika.URLParameters(url))
    try:
        channel = connection.channel()
        channel.confirm_delivery()
        published = []
        for request in examples(run):
            properties = pika.BasicProperties(
                content_type="application/json",
                delivery_mode=2,
                message_id=request["channel_message_id"],
            )
            # With confirms on, basic_publish raises if the broker nacks or returns the message.
            channel.basic_publish(
                exchange=exchange,
                routing_key="intake." + request["channel"],
                body=json.dumps(request).encode("utf-8"),
                properties=properties,
                mandatory=True,
            )
            published.append(request["channel_message_id"])
    finally:
        connection.close()
    print(json.dumps(published))
    return 0


if __name__ == "__main__":
    sys.exit(main())
