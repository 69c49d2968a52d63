"""JSON log lines hold engine text as it came, whatever it holds."""

from __future__ import annotations

import json
import logging

from warest.logs import JsonFormatter


def test_a_line_with_an_unpaired_surrogate_is_written_made_safe() -> None:
    record = logging.LogRecord(
        "warest.test", logging.WARNING, __file__, 1, "push name %s", ("a\x00b\ud800",), None
    )
    line = JsonFormatter().format(record)
    assert json.loads(line)["msg"] == "push name a\ufffdb\ufffd"


def test_a_line_with_nul_keeps_it_escaped() -> None:
    record = logging.LogRecord("warest.test", logging.INFO, __file__, 1, "text %s", ("a\x00b",), None)
    assert json.loads(JsonFormatter().format(record))["msg"] == "text a\x00b"
