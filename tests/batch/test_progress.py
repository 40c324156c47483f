from __future__ import annotations

import io

from fwprep.batch import Record
from fwprep.batch.progress import Progress


def record(status: str) -> Record:
    return Record(key="k", status=status, model="m", precision="FP8", source="s", line=1)  # type: ignore[arg-type]


def test_a_status_line_every_interval_when_not_a_terminal() -> None:
    stream = io.StringIO()
    progress = Progress(10, stream=stream, interval=0.0, terminal=False)
    progress(record("ok"))
    progress(record("failed"))
    progress.close()
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2
    assert lines[-1].startswith("fwprep: 2 of 10 done (1 failed, 1 ok) at ")


def test_no_line_before_the_interval_is_up() -> None:
    stream = io.StringIO()
    progress = Progress(None, stream=stream, interval=3600.0, terminal=False)
    for _ in range(50):
        progress(record("ok"))
    assert stream.getvalue() == ""
    assert progress.status_line().startswith("50 done (50 ok)")


def test_quiet_shows_nothing_but_still_counts() -> None:
    stream = io.StringIO()
    progress = Progress(3, stream=stream, quiet=True, interval=0.0, terminal=True)
    progress(record("ok"))
    progress.close()
    assert stream.getvalue() == ""
    assert progress.done == 1


def test_a_terminal_gets_a_bar_with_counts_and_failures() -> None:
    stream = io.StringIO()
    progress = Progress(4, stream=stream, terminal=True)
    for status in ("ok", "ok", "failed", "invalid"):
        progress(record(status))
    progress.close()
    screen = stream.getvalue()
    assert "4/4" in screen
    assert "1 failed, 1 invalid" in screen  # an invalid row is no failed preparation


def test_items_waiting_are_shown_until_their_final_record() -> None:
    progress = Progress(3, stream=io.StringIO(), interval=3600.0, terminal=False)
    for key in ("a", "b"):
        progress(Record(key=key, status="accepted", model="m", precision="FP8", source="s", line=1))
    assert progress.waiting == 2
    assert progress.status_line().startswith("0 of 3 done (), 2 waiting at ")
    progress(Record(key="a", status="ok", model="m", precision="FP8", source="s", line=1))
    assert progress.waiting == 1
    assert progress.status_line().startswith("1 of 3 done (1 ok), 1 waiting at ")
