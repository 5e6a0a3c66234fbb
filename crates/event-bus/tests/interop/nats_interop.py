"""Interop with a foreign NATS client (nats-py) in the CloudEvents NATS binding's binary mode.

Driven by tests/interop_nats_python.rs. The CloudEvents Python SDK has no NATS
binding, so the headers are written and read by hand, as docs/wire-format.md
("NATS JetStream") describes them. Two commands:

  publish URL SUBJECT TYPE    JetStream-publish one event in binary mode
                              (percent-encoded ce- headers, Content-Type,
                              Nats-Msg-Id), print its id and headers as JSON
  consume URL STREAM SUBJECT  take one message from SUBJECT through a new
                              durable pull consumer, ack it, print its raw
                              headers, its decoded attributes and data as JSON
"""

import asyncio
import json
import sys
import uuid
from urllib.parse import quote, unquote_to_bytes

import nats

# Printable ASCII but space, '"' and '%' stays as it is; everything else is percent-encoded.
SAFE = "".join(chr(c) for c in range(0x21, 0x7F) if chr(c) not in '"%')


def encode(value: str) -> str:
    return quote(value, safe=SAFE)


def decode(value: str) -> str:
    return unquote_to_bytes(value).decode("utf-8")  # strict: invalid UTF-8 raises


async def publish(url: str, subject: str, event_type: str) -> None:
    nc = await nats.connect(url)
    js = nc.jetstream()
    event_id = str(uuid.uuid4())
    headers = {
        "ce-specversion": "1.0",
        "ce-id": event_id,
        "ce-source": "/python-service",
        "ce-type": event_type,
        "ce-subject": encode("user 42 \u00e9"),
        "ce-time": "2025-01-02T03:04:05Z",
        "ce-datacontenttype": "application/json",
        "ce-correlationid": encode("py-corr-1"),
        "Content-Type": "application/json",
        "Nats-Msg-Id": event_id,
    }
    data = json.dumps({"user_id": "user-42", "display_name": "Ada"}).encode()
    ack = await js.publish(subject, data, headers=headers)  # awaits the stream's ack
    await nc.close()
    print(json.dumps({"id": event_id, "headers": headers, "stream": ack.stream}))


async def consume(url: str, stream: str, subject: str) -> None:
    nc = await nats.connect(url)
    js = nc.jetstream()
    durable = f"py-{uuid.uuid4().hex}"
    sub = await js.pull_subscribe(subject, durable=durable, stream=stream)
    try:
        [msg] = await sub.fetch(1, timeout=30)
        headers = dict(msg.headers or {})
        attributes = {
            name[3:].lower(): decode(value)
            for name, value in headers.items()
            if name.lower().startswith("ce-")
        }
        await msg.ack_sync()
    finally:
        await js.delete_consumer(stream, durable)
        await nc.close()
    print(
        json.dumps(
            {
                "headers": headers,
                "attributes": attributes,
                "data": json.loads(msg.data),
                "subject": msg.subject,
            }
        )
    )


if __name__ == "__main__":
    command, *args = sys.argv[1:]
    asyncio.run({"publish": publish, "consume": consume}[command](*args))
