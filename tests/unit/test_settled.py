"""One rule of a settled verdict: the report, the status, the export and the calibration
agree on which items are settled, waiting for their other raters, or disputed."""

import pytest
from click.testing import CliRunner
from test_review import AXES, _rewrite, people, predictions, rate_as_preferring

from medfactory.cli import cli
from medfactory.review.exports import review_export
from medfactory.review.rating import Submission, arbitrate, queue, submit
from medfactory.review.report import build_report, report_markdown
from medfactory.review.settled import settled_items, study_status
from medfactory.review.sheets import import_sheet, read_sheet, write_sheet
from medfactory.review.studies import StudySpec, create_study
from medfactory.store.db import open_store


@pytest.fixture
def url(tmp_path):
    """Two raters who both hold every item (overlap 2 of 2), and an arbiter."""
    url = f"sqlite:///{tmp_path / 'review.db'}"
    store = open_store(url)
    files = [predictions(tmp_path, "base"), predictions(tmp_path, "lora")]
    create_study(store, StudySpec("r1", files, ["d1", "d2"], arbiter="boss", overlap=2, seed=3))
    store.close()
    return url


def test_items_one_of_two_raters_rated_are_waiting_everywhere(url):
    store = open_store(url)
    raters = people(store)
    for position in (1, 2, 3, 4):  # only d1 rates these: waiting for d2
        rate_as_preferring(store, raters["d1"], "lora", position)
    for position in (5, 6):  # both agree: settled
        for name in ("d1", "d2"):
            rate_as_preferring(store, raters[name], "lora", position)
    rate_as_preferring(store, raters["d1"], "lora", 7)  # they differ: disputed
    rate_as_preferring(store, raters["d2"], "base", 7)

    report = build_report(store, "r1")
    assert report["settled"] == 2 and report["after_arbitration"]["lora"]["win"]["count"] == 2
    assert report["after_arbitration"]["lora"]["n"] == 2  # not the 6 a one-rater count gives
    assert report["waiting"] == 4 and report["waiting_items"] == [1, 2, 3, 4]
    assert report["unresolved"] == 1 and report["not_rated"] == 5
    assert report["before_arbitration"]["lora"]["n"] == 4 + 4 + 2  # every rating still counts
    assert "waiting for their other raters 4" in report_markdown(report)
    assert "Waiting: items 1, 2, 3, 4." in report_markdown(report)

    export = review_export(store, "r1")
    assert len(export.examples["dpo"]) == report["settled"] == 2
    assert export.skipped["waiting for its other raters"] == report["waiting"]
    assert export.skipped["raters disagree, not arbitrated"] == report["unresolved"]
    assert [i["position"] for i in settled_items(store, "r1")] == [5, 6]  # the calibration's

    status = study_status(store, "r1")
    assert status["waiting"] == [1, 2, 3, 4] and status["standing"]["settled"] == 2
    printed = CliRunner().invoke(cli, ["review", "status", "r1", "--db", url])
    assert printed.exit_code == 0, printed.output
    assert "waiting for their other raters 4" in printed.output
    assert "waiting: items 1, 2, 3, 4" in printed.output
    store.close()


def test_the_arbiter_settles_an_item_before_its_raters_are_done(url):
    store = open_store(url)
    raters = people(store)
    rate_as_preferring(store, raters["d1"], "lora", 1)
    arbitrate(store, raters["boss"].id, 1, "tie", "", "a1")
    report = build_report(store, "r1")
    assert report["settled"] == 1 and report["waiting"] == 0
    assert report["after_arbitration"]["lora"]["tie"]["count"] == 1
    assert [i["verdict"] for i in settled_items(store, "r1")] == ["tie"]
    store.close()


def test_a_rater_who_used_a_sheet_has_no_timing_and_the_report_says_so(url, tmp_path):
    store = open_store(url)
    d1 = people(store)["d1"]
    with store.session() as session:
        position = queue(session, d1)[0][0].position
    scores = {a: (4, 2) for a in AXES}  # on the page, which times the rating
    submit(store, d1.id, position, Submission("1", scores, seconds=42.0), None)
    path = tmp_path / "d2.csv"
    write_sheet(store, "r1", "d2", path)
    sheet = read_sheet(path)
    sheet.rows[0].update(verdict="1", **{f"{a}_{n}": 3 for a in AXES for n in (1, 2)})
    _rewrite(path, sheet)
    import_sheet(store, "r1", path, "d2")
    report = build_report(store, "r1")
    assert report["median_seconds"] == {"d1": 42.0, "d2": None}
    assert "d1 42 s, d2 from sheets: no timing" in report_markdown(report)
    store.close()
