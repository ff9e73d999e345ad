"""Several due issues in one run: a report per issue, set-aside issues taken up when due."""

from __future__ import annotations

from newsletter.delivery.report import SendReport
from newsletter.delivery.rounds import DueRounds
from tests.clocks import FakeClock


def test_nothing_waits_so_no_round_follows() -> None:
    clock = FakeClock(1000.0)
    rounds = DueRounds(clock=clock.time, sleep=clock.sleep)
    rounds.record(SendReport(1, batches_sent=2, final_state="sent"))
    assert rounds.next_round() == [] and clock.slept == []


def test_set_aside_issues_come_back_when_due_and_reports_add_up() -> None:
    clock = FakeClock(1000.0)
    rounds = DueRounds(clock=clock.time, sleep=clock.sleep)
    rounds.record(SendReport(1, batches_sent=1, retries=1, retry_at=1030.0))
    rounds.record(SendReport(2, retry_at=1010.0))
    rounds.record(SendReport(3, recipients_sent=5, final_state="sent"))
    assert rounds.next_round() == [2] and clock.slept == [10.0]
    rounds.record(SendReport(2, recipients_sent=4, final_state="sent"))
    assert rounds.next_round() == [1] and clock.now == 1030.0
    rounds.record(SendReport(1, batches_sent=3, recipients_sent=7, final_state="sent"))
    assert rounds.next_round() == []
    summed = {r.issue_id: r for r in rounds.reports()}
    assert (summed[1].batches_sent, summed[1].retries, summed[1].recipients_sent) == (4, 1, 7)
    assert summed[1].final_state == "sent" and summed[1].retry_at is None
    assert summed[2].recipients_sent == 4 and summed[3].recipients_sent == 5


def test_one_progress_display_per_issue() -> None:
    made: list[int] = []

    def progress_for(issue_id: int) -> None:
        made.append(issue_id)

    rounds = DueRounds(progress_for)
    rounds.progress(7)
    rounds.progress(7)
    assert made == [7]


def test_issues_due_together_after_a_long_sleep_go_in_the_order_they_came_due() -> None:
    clock = FakeClock(1000.0)

    def oversleep(seconds: float) -> None:  # a loaded machine wakes the run late
        clock.sleep(seconds + 2.0)

    rounds = DueRounds(clock=clock.time, sleep=oversleep)
    rounds.record(SendReport(1, retries=1, retry_at=1004.001))  # its batch was refused
    rounds.record(SendReport(2, retry_at=1004.0))  # it waited for the account's pause
    assert rounds.next_round() == [2, 1]
