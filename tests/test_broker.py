"""The file-system broker of ``make run``: a worker never finds a message half written (kombu#1551)."""

import json
import os

from kombu import Connection, Exchange, Queue

from leadrouter import broker


def _connection(folder) -> Connection:
    options = {
        "data_folder_in": str(folder),
        "data_folder_out": str(folder),
        "control_folder": str(folder / "control"),
        "store_processed": False,
    }
    return Connection("filesystem://", transport_options=options)


def test_a_message_appears_under_its_queue_name_only_once_it_is_written_whole(tmp_path, monkeypatch):
    seen_at_rename = []
    replace = os.replace

    def watching_replace(source, destination):
        # The moment the message becomes visible to a reader: nothing under a queue's name yet, and the file
        # about to appear holds the whole message.
        with open(source, "rb") as partial:
            seen_at_rename.append((sorted(os.listdir(tmp_path)), partial.read()))
        replace(source, destination)

    monkeypatch.setattr(broker.os, "replace", watching_replace)
    queue = Queue("leads", Exchange("leads"), routing_key="leads")
    with _connection(tmp_path) as connection:
        connection.Producer().publish(
            {"lead_ids": [1, 2, 3]}, exchange=queue.exchange, routing_key="leads", declare=[queue]
        )
        ((names, written),) = seen_at_rename
        assert not any(name.endswith(".msg") for name in names)
        assert json.loads(written)["body"]  # The whole envelope, body and all.

        message = queue(connection.default_channel).get(no_ack=True)
        assert message.payload == {"lead_ids": [1, 2, 3]}
        assert os.listdir(tmp_path) == ["control"]  # Taken, and nothing left behind.


def test_file_system_urls_get_it_and_other_brokers_keep_theirs():
    assert Connection("filesystem://").get_transport_cls() is broker.Transport
    assert Connection("redis://127.0.0.1:6379/0").get_transport_cls().__module__ == "kombu.transport.redis"
