"""Interop with the official CloudEvents Python SDK over RabbitMQ (pika).

Driven by tests/interop_python.rs. Two commands:

  publish URL EXCHANGE TYPE   publish one event in binary mode with
                              cloudevents.core.bindings.rabbitmq.to_binary,
                              print its attributes as JSON
  consume URL QUEUE           take one message from QUEUE, read it with
                              from_binary, print its attributes and data as JSON

Follows docs/wire-format.md.
"""

import json
import sys
import uuid
from datetime import datetime, timezone

import pika
from cloudevents.core.bindings import rabbitmq
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent


def publish(url: str, exchange: str, event_type: str) -> None:
    event = CloudEvent(
        attributes={
            "id": str(uuid.uuid4()),
            "source": "/python-service",
            "type": event_type,
            "subject": "user-42",
            "time": datetime(2025, 1, 2, 3, 4, 5, tzinfo=timezone.utc),
            "datacontenttype": "application/json",
            "correlationid": "py-corr-1",
        },
        data={"user_id": "user-42", "display_name": "Ada"},
    )
    message = rabbitmq.to_binary(event, JSONFormat())
    connection = pika.BlockingConnection(pika.URLParameters(url))
    channel = connection.channel()
    channel.confirm_delivery()
    channel.basic_publish(
        exchange=exchange,
        routing_key=event_type,  # the routing key is the event type
        body=message.body,
        properties=pika.BasicProperties(
            headers=message.headers,
            content_type=message.content_type,
            delivery_mode=2,  # persistent
            message_id=event.get_id(),
            type=event_type,
        ),
        mandatory=True,  # an unroutable event raises UnroutableError
    )
    connection.close()
    print(json.dumps({"id": event.get_id(), "headers": message.headers}))


def consume(url: str, queue: str) -> None:
    connection = pika.BlockingConnection(pika.URLParameters(url))
    channel = connection.channel()
    method, properties, body = channel.basic_get(queue=queue, auto_ack=False)
    if method is None:
        print(json.dumps({"error": f"queue {queue} is empty"}))
        sys.exit(1)
    headers = {k: (v.decode() if isinstance(v, bytes) else str(v)) for k, v in (properties.headers or {}).items()}
    message = rabbitmq.RabbitMQMessage(headers=headers, content_type=properties.content_type, body=body)
    event = rabbitmq.from_binary(message, JSONFormat(), CloudEvent)
    channel.basic_ack(method.delivery_tag)
    connection.close()
    attributes = {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in event.get_attributes().items()}
    print(
        json.dumps(
            {
                "attributes": attributes,
                "data": event.get_data(),
                "message_id": properties.message_id,
                "type_property": properties.type,
                "timestamp": properties.timestamp,
                "delivery_mode": properties.delivery_mode,
            }
        )
    )


if __name__ == "__main__":
    command, *args = sys.argv[1:]
    {"publish": publish, "consume": consume}[command](*args)
