"""The second SDK example: the webhook sink itself builds out of tree from
the installed SDK and sink kit alone (`pkg-config --cflags --libs
pgspout-kit`, plus OpenSSL), loads into the installed pgspout by path, and
delivers signed batches that the receiver verifies with the Standard
Webhooks reference library and that equal the file sink's lines."""

import json
import os
import shutil

import message_sinks as ms
from test_sdk_example import REPO
from test_sdk_kit import make_on_installed_kit
from test_webhook import canonical, check_signed, options, receiver  # noqa: F401
from webhook_server import accepted_events


def build_webhook_sink(pgspout_bin, tmp_path):
    build = tmp_path / "webhook_sdk"
    shutil.copytree(os.path.join(REPO, "tests", "integration", "webhook_sdk"),
                    build)
    for name in ("webhook_sink.c", "webhook_sign.c", "webhook_sign.h"):
        shutil.copy(os.path.join(REPO, "plugins", "webhook", name), build)
    out = make_on_installed_kit(pgspout_bin, build)
    assert os.path.join(REPO, "lib") not in out
    return build / "pgspout_webhook.so"


def test_webhook_sink_out_of_tree(db, pgspout, pgspout_bin, tmp_path,
                                  receiver):  # noqa: F811
    sink = build_webhook_sink(pgspout_bin, tmp_path)
    ms.tables(db)
    db.create_slot(db.name)
    ms.workload(db)
    lines = ms.run_both(db, pgspout, tmp_path, str(sink),
                        options(receiver, format="ndjson", batch_records=2))
    got = accepted_events(check_signed(receiver))
    assert canonical(got) == canonical(json.loads(line) for line in lines)
    assert {e["op"] for e in got} >= {"insert", "message", "begin", "commit"}
