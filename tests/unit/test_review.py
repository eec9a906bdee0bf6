"""Clinician review on the embedded store: studies, blind queues, ratings, sheets, report."""

import json
import math
from pathlib import Path

import pytest
from sqlalchemy import select

from medfactory.review.errors import NotYours, RatingError, SheetError, StoreError, StudyError
from medfactory.review.rating import (
    Submission,
    arbitrate,
    disagreements,
    next_position,
    queue,
    rater_view,
    status,
    submit,
)
from medfactory.review.report import build_report, report_markdown
from medfactory.review.sheets import LEGEND, Sheet, columns, import_sheet, read_sheet, write_sheet
from medfactory.review.studies import StudySpec, conversation_of, create_study, issue_links
from medfactory.store.db import Assignment, Item, Rater, Rating, Version, open_store

AXES = ("accuracy", "safety", "completeness", "communication")


def predictions(folder: Path, name: str, count: int = 12, prompts: str = "q") -> Path:
    path = folder / name / "generated_predictions.jsonl"
    path.parent.mkdir(parents=True)
    rows = [
        {"prompt": f"<|im_start|>system\n你是医生。<|im_end|>\n<|im_start|>user\n{prompts}{i}"
         "<|im_end|>\n<|im_start|>assistant\n", "predict": f"{name} says {i}", "label": f"ref {i}"}
        for i in range(count)
    ]  # fmt: skip
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    return path


@pytest.fixture
def study(tmp_path):
    store = open_store(f"sqlite:///{tmp_path / 'review.db'}")
    files = [predictions(tmp_path, "base"), predictions(tmp_path, "lora")]
    spec = StudySpec("r1", files, ["d1", "d2", "d3"], arbiter="boss", overlap=2, seed=7)
    create_study(store, spec)
    yield store
    store.close()


def people(store) -> dict[str, Rater]:
    with store.session() as session:
        return {r.name: r for r in session.scalars(select(Rater))}


def shown(store, rater: Rater, position: int) -> tuple[str, str]:
    with store.session() as session:
        return rater_view(session, rater, position).answers


def rate_as_preferring(store, rater: Rater, version: str, position: int, **kw) -> None:
    """Rate `position`, preferring the answer that `version` wrote, whichever side shows it."""
    answers = shown(store, rater, position)
    verdict = "1" if answers[0].startswith(version) else "2"
    scores = kw.pop("scores", {a: (4, 2) if verdict == "1" else (2, 4) for a in AXES})
    submit(
        store,
        rater.id,
        position,
        Submission(verdict, scores, **kw),
        f"{rater.name}-{position}-{verdict}",
    )


def test_each_item_goes_to_two_raters_balanced_and_in_their_own_order(study):
    raters = people(study)
    with study.session() as session:
        loads = {n: len(queue(session, r)) for n, r in raters.items() if r.role == "rater"}
        per_item = {}
        for a in session.scalars(select(Assignment)):
            per_item.setdefault(a.item_id, []).append(a.left_first)
    assert sorted(loads.values()) == [8, 8, 8]  # 12 items x 2 raters over 3
    assert all(len(orders) == 2 for orders in per_item.values())
    assert {tuple(o) for o in per_item.values()} > {(True, True)}  # orders drawn, not fixed


def test_a_rater_sees_only_their_queue_and_never_a_model_name(study):
    raters = people(study)
    with study.session() as session:
        mine = {i.position for i, _, _ in queue(session, raters["d1"])}
        other = next(p for p in range(1, 13) if p not in mine)
        with pytest.raises(NotYours):
            rater_view(session, raters["d1"], other)
        view = rater_view(session, raters["d1"], min(mine))
    assert view.conversation == [
        {"role": "system", "content": "你是医生。"},
        {"role": "user", "content": f"q{min(mine) - 1}"},
    ]
    page_text = json.dumps(view.__dict__, ensure_ascii=False)
    assert "generated_predictions" not in page_text and "lora/" not in page_text


def test_verdicts_are_stored_relative_to_the_versions_not_the_screen(study):
    raters = people(study)
    with study.session() as session:
        positions = [i.position for i, _, _ in queue(session, raters["d1"])]
    for position in positions:
        rate_as_preferring(study, raters["d1"], "lora", position)
    with study.session() as session:
        rows = session.execute(
            select(Item, Rating)
            .join(Assignment, Assignment.item_id == Item.id)
            .join(Rating, Rating.assignment_id == Assignment.id)
        ).all()
        lora = session.scalar(select(Version.id).where(Version.name == "lora"))
    assert rows and all((r.verdict == "left") == (i.left_id == lora) for i, r in rows)


def test_a_double_submit_is_stored_once_and_a_revision_keeps_the_history(study):
    d1 = people(study)["d1"]
    with study.session() as session:
        position = next_position(session, d1)
    good = Submission("1", {a: (5, 3) for a in AXES})
    submit(study, d1.id, position, good, "key-1")
    submit(study, d1.id, position, good, "key-1")  # the same form, sent twice
    submit(
        study,
        d1.id,
        position,
        Submission("tie", {a: (3, 3) for a in AXES}, comment="再看"),
        "key-2",
    )
    with study.session() as session:
        ratings = session.scalars(select(Rating).order_by(Rating.id)).all()
        assert next_position(session, d1) != position
    assert [(r.verdict in ("left", "right"), r.current) for r in ratings] == [
        (True, False),
        (False, True),
    ]
    assert ratings[-1].comment == "再看"


@pytest.mark.parametrize(
    ("submission", "message"),
    [
        (Submission("3", {a: (1, 1) for a in AXES}), "verdict '3'"),
        (Submission("1", {a: (1, 6) for a in AXES}), "accuracy_2 6: a score from 1 to 5"),
        (Submission("1", {a: (1, 1) for a in AXES[:3]}), "communication_1 None"),
    ],
)
def test_a_bad_submission_names_the_field_and_stores_nothing(study, submission, message):
    d1 = people(study)["d1"]
    with study.session() as session:
        position = next_position(session, d1)
    with pytest.raises(RatingError, match=message):
        submit(study, d1.id, position, submission, "k")
    with study.session() as session:
        assert session.scalars(select(Rating)).all() == []


def test_disagreement_goes_to_the_arbiter_who_settles_it(study):
    raters = people(study)
    with study.session() as session:
        both = sorted({i.position for i, _, _ in queue(session, raters["d1"])}
                      & {i.position for i, _, _ in queue(session, raters["d2"])})  # fmt: skip
    first, second = both[0], both[1]
    rate_as_preferring(study, raters["d1"], "lora", first)
    rate_as_preferring(study, raters["d2"], "base", first)  # verdicts differ
    rate_as_preferring(study, raters["d1"], "lora", second)
    wide = {a: (4, 2) for a in AXES} | {"safety": (4, 4)}  # the other answer: 2 -> 4
    rate_as_preferring(study, raters["d2"], "lora", second)  # same verdict ...
    with study.session() as session:
        assert disagreements(session, 1) == [first]
    answers = shown(study, raters["d2"], second)
    verdict = "1" if answers[0].startswith("lora") else "2"
    scores = wide if verdict == "1" else {a: (b, a_) for a, (a_, b) in wide.items()}
    submit(
        study, raters["d2"].id, second, Submission(verdict, scores), "wide"
    )  # ... scores 2+ apart
    with study.session() as session:
        assert disagreements(session, 1) == [first, second]
        assert next_position(session, raters["boss"]) == first
    arbitrate(study, raters["boss"].id, first, "tie", "both fine", "a1")
    assert status(study, "r1")["open_disagreements"] == 1
    assert status(study, "r1")["arbitrated"] == 1


def test_links_are_random_and_only_their_hash_is_stored(study, tmp_path):
    links = issue_links(study, "r1", "http://127.0.0.1:8300")
    assert set(links) == {"d1", "d2", "d3", "boss"}
    tokens = [link.rsplit("/", 1)[1] for link in links.values()]
    assert len(set(tokens)) == 4 and all(len(t) >= 32 for t in tokens)
    stored = (tmp_path / "review.db").read_bytes()
    assert not any(t.encode() in stored for t in tokens)


def test_files_that_do_not_line_up_name_the_first_line(tmp_path):
    store = open_store(f"sqlite:///{tmp_path / 'r.db'}")
    a = predictions(tmp_path, "a")
    b = predictions(tmp_path, "b")
    lines = b.read_text().splitlines()
    lines[4] = lines[4].replace("q4", "another question")
    b.write_text("\n".join(lines) + "\n")
    with pytest.raises(StudyError, match=rf"{b}:5: its prompt differs from {a}:5"):
        create_study(store, StudySpec("x", [a, b], ["d1", "d2"]))
    short = predictions(tmp_path, "c", count=10)
    with pytest.raises(StudyError, match="has 10 predictions .* 12; they differ from line 11"):
        create_study(store, StudySpec("x", [a, short], ["d1", "d2"]))
    with pytest.raises(StudyError, match="--overlap 3"):
        create_study(store, StudySpec("x", [a, a], ["d1", "d2"], overlap=3))
    create_study(store, StudySpec("x", [a, a], ["d1", "d2"]))
    with pytest.raises(StudyError, match="a study named 'x' exists"):
        create_study(store, StudySpec("x", [a, a], ["d1", "d2"]))


def test_three_versions_get_a_pair_per_item_and_bradley_terry(tmp_path):
    store = open_store(f"sqlite:///{tmp_path / 'r.db'}")
    files = [predictions(tmp_path, n, count=30) for n in ("v1", "v2", "v3")]
    create_study(store, StudySpec("three", files, ["d1", "d2"], overlap=1, seed=1))
    raters = people(store)
    strength = {"v1": 0, "v2": 1, "v3": 2}
    for rater in raters.values():
        with store.session() as session:
            positions = [i.position for i, _, _ in queue(session, rater)]
        for position in positions:
            answers = shown(store, rater, position)
            versions = [a.split()[0] for a in answers]
            best = max(versions, key=strength.get)
            verdict = "1" if versions[0] == best else "2"
            submit(store, rater.id, position, Submission(verdict, {a: (3, 3) for a in AXES}), None)
    report = build_report(store, "three")
    ratings = {v: r["rating"] for v, r in report["bradley_terry"].items()}
    assert ratings["v3"] > ratings["v2"] > ratings["v1"]
    assert math.isclose(sum(ratings.values()) / 3, 1000)
    styled = report["style_controlled"]  # beside the plain ratings, json and Markdown
    controlled = {v: r["rating"] for v, r in styled["ratings"].items()}
    assert controlled["v3"] > controlled["v2"] > controlled["v1"]  # the answers' style alike
    assert set(styled["style"]) == {"length", "headers", "bold", "lists"}
    assert styled["style"]["bold"] is None  # no Markdown anywhere
    text = report_markdown(report)
    assert "| version | rating | 95 % interval | style-controlled | 95 % interval |" in text
    assert "bold - (never differs)" in text


def test_conversations_from_each_kind_of_prediction_file():
    assert conversation_of({"messages": [{"role": "user", "content": "hi"}], "prompt": "hi"}) == [
        {"role": "user", "content": "hi"}
    ]
    chatml = (
        "<|im_start|>user\nq1<|im_end|>\n<|im_start|>assistant\na1<|im_end|>\n"
        "<|im_start|>user\nq2<|im_end|>\n<|im_start|>assistant\n"
    )
    assert conversation_of({"prompt": chatml}) == [
        {"role": "user", "content": "q1"}, {"role": "assistant", "content": "a1"},
        {"role": "user", "content": "q2"},
    ]  # fmt: skip
    assert conversation_of({"prompt": "plain"}) == [{"role": "user", "content": "plain"}]


# --- sheets -------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".xlsx", ".csv"])
def test_a_sheet_round_trip_stores_what_the_rater_wrote(study, tmp_path, suffix):
    path = tmp_path / f"d2{suffix}"
    rows = write_sheet(study, "r1", "d2", path)
    sheet = read_sheet(path)
    assert sheet.header == columns(list(AXES)) and len(sheet.rows) == rows == 8
    sheet.rows[0].update(verdict="2", correction="先测血压", comment="")
    for axis in AXES:
        sheet.rows[0][f"{axis}_1"], sheet.rows[0][f"{axis}_2"] = 2, 5
    _rewrite(path, sheet)
    assert import_sheet(study, "r1", path, "d2") == {"rated": 1, "rows": 8}
    assert import_sheet(study, "r1", path, "d2") == {"rated": 1, "rows": 8}  # again: no change
    d2 = people(study)["d2"]
    with study.session() as session:
        [(item, _, rating)] = [row for row in queue(session, d2) if row[2] is not None]
        assert item.position == int(sheet.rows[0]["item"])
        assert session.scalars(select(Rating)).all() == [rating]  # one revision, not two
    assert rating.source == "sheet" and rating.correction == "先测血压"
    view = shown(study, d2, item.position)
    assert view[1] == sheet.rows[0]["answer_2"]


def _rewrite(path: Path, sheet: Sheet, legend: bool | None = None) -> None:
    """Write `sheet` back as a rater's spreadsheet would; a CSV keeps its legend row unless
    `legend` says otherwise."""
    header, rows = sheet.header, sheet.rows
    if path.suffix == ".csv":
        import csv

        keep = sheet.first_row == 3 if legend is None else legend
        with path.open("w", newline="", encoding="utf-8-sig") as out:
            if keep:
                csv.writer(out).writerow([LEGEND["pair"], "", ""])  # as Excel saves it
            writer = csv.DictWriter(out, header)
            writer.writeheader()
            writer.writerows(rows)
        return
    from openpyxl import load_workbook

    book = load_workbook(path)
    ratings = book["ratings"]
    for r, row in enumerate(rows, 2):
        for c, name in enumerate(header, 1):
            ratings.cell(r, c, row[name])
    book.save(path)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda rows, header: header.remove("safety_2"), "missing column(s) safety_2"),
        (
            lambda rows, header: rows[1].update(accuracy_1=7),
            "row 4, column accuracy_1: 7 is out of range",  # row 1 the legend, 2 the header
        ),
        (lambda rows, header: rows[0].update(verdict="better"), "row 3, column verdict: 'better'"),
        (
            lambda rows, header: rows[0].update(item=999),
            "row 3, column item: item 999 is not in d2's queue",
        ),
    ],
)
def test_a_bad_sheet_names_row_and_column_and_stores_nothing(study, tmp_path, change, message):
    path = tmp_path / "d2.csv"
    write_sheet(study, "r1", "d2", path)
    sheet = read_sheet(path)
    for row in sheet.rows:
        row.update(verdict="1", **{f"{a}_{n}": 3 for a in AXES for n in (1, 2)})
    change(sheet.rows, sheet.header)
    sheet.rows = [{k: r.get(k) for k in sheet.header} for r in sheet.rows]
    _rewrite(path, sheet)
    with pytest.raises(SheetError, match=message.replace("(", r"\(").replace(")", r"\)")):
        import_sheet(study, "r1", path, "d2")
    with study.session() as session:
        assert session.scalars(select(Rating)).all() == []


def test_a_sheet_imported_under_another_raters_name_is_refused(study, tmp_path):
    path = tmp_path / "d2.xlsx"
    write_sheet(study, "r1", "d2", path)
    with pytest.raises(SheetError, match="this is d2's sheet, not d1's; import it with --rater d2"):
        import_sheet(study, "r1", path, "d1")


@pytest.fixture
def two_raters(tmp_path):
    """Two raters holding the same items (overlap 2 of 2), each in their own order."""
    url = f"sqlite:///{tmp_path / 'two.db'}"
    store = open_store(url)
    files = [predictions(tmp_path, "base"), predictions(tmp_path, "lora")]
    create_study(store, StudySpec("r1", files, ["d1", "d2"], overlap=2, seed=7))
    yield store, url
    store.close()


def _filled(path: Path) -> Sheet:
    sheet = read_sheet(path)
    for row in sheet.rows:
        row.update(verdict="1", **{f"{a}_{n}": 4 for a in AXES for n in (1, 2)})
    return sheet


@pytest.mark.parametrize("legend", [True, False])
def test_a_csv_sheet_imported_under_the_other_raters_name_is_refused(two_raters, tmp_path, legend):
    store, _ = two_raters
    path = tmp_path / "d1.csv"
    write_sheet(store, "r1", "d1", path)
    _rewrite(path, _filled(path), legend=legend)
    with store.session() as session:
        orders = {}
        for a in session.scalars(select(Assignment)):
            orders.setdefault(a.item_id, []).append(a.left_first)
    first_differing = min(i for i, (x, y) in orders.items() if x != y)  # item id = position
    row = first_differing + (2 if legend else 1)
    with pytest.raises(SheetError) as refused:
        import_sheet(store, "r1", path, "d2")
    message = str(refused.value)
    assert "\n" not in message
    assert f"{path}, row {row}: answer_1 and answer_2 are in d1's order, not d2's" in message
    assert "import it with --rater d1" in message
    with store.session() as session:
        assert session.scalars(select(Rating)).all() == []  # nothing stored
    assert import_sheet(store, "r1", path, "d1") == {"rated": 12, "rows": 12}


def test_answers_changed_in_a_sheet_are_refused(two_raters, tmp_path):
    store, _ = two_raters
    path = tmp_path / "d1.csv"
    write_sheet(store, "r1", "d1", path)
    sheet = _filled(path)
    sheet.rows[2]["answer_1"] = "another answer"
    _rewrite(path, sheet)
    with pytest.raises(SheetError, match=r"row 5, columns answer_1 and answer_2: not the answers"):
        import_sheet(store, "r1", path, "d1")


def test_a_csv_sheet_starts_with_a_legend_the_import_skips(study, tmp_path):
    path = tmp_path / "d2.csv"
    write_sheet(study, "r1", "d2", path)
    legend = path.read_text(encoding="utf-8-sig").splitlines()[0]
    assert legend.startswith("# Legend") and "both_bad" in legend and "两者都不可接受" in legend
    sheet = read_sheet(path)
    assert sheet.first_row == 3 and sheet.header == columns(list(AXES))
    assert import_sheet(study, "r1", path, "d2") == {"rated": 0, "rows": 8}


WORDS = {  # as written in a sheet -> the verdict as shown
    "1": "1", "2.0": "2", "１": "1", "Answer 1 better": "1", "回答 2 更好": "2",
    "tie": "tie", "Tie": "tie", "平局": "tie", "两者相当": "tie",
    "both_bad": "both_bad", "Both unacceptable": "both_bad", "both  unacceptable": "both_bad",
    "都不可接受": "both_bad", "两者都不可接受": "both_bad",
}  # fmt: skip


def test_a_sheet_takes_the_verdict_words_of_the_page_and_readme_in_both_languages(study, tmp_path):
    from medfactory.locales import LANGUAGES, gettext
    from medfactory.review.page import VERDICT_LABELS

    words = dict(WORDS)
    for lang in LANGUAGES:  # what the page calls each verdict, in every language
        words |= {gettext(lang)(label): value for value, label in VERDICT_LABELS}
    d2 = people(study)["d2"]
    path = tmp_path / "d2.csv"
    write_sheet(study, "r1", "d2", path)
    sheet = read_sheet(path)
    for word, verdict in words.items():
        row = sheet.rows[0]
        row.update(verdict=word, **{f"{a}_{n}": 3 for a in AXES for n in (1, 2)})
        _rewrite(path, sheet)
        import_sheet(study, "r1", path, "d2")
        with study.session() as session:
            stored = rater_view(session, d2, int(row["item"])).previous["verdict"]
        assert stored == verdict, word
    row.update(verdict="都很好")
    _rewrite(path, sheet)
    with pytest.raises(
        SheetError, match="'都很好'; write 1, 2, tie, both_bad .*平局, 两者都不可接受"
    ):
        import_sheet(study, "r1", path, "d2")


def test_sheet_prints_the_exact_import_command_and_it_works(two_raters, tmp_path):
    import shlex

    from click.testing import CliRunner

    from medfactory.cli import cli

    store, url = two_raters
    path = tmp_path / "my sheets" / "d2.csv"
    made = CliRunner().invoke(cli, ["review", "sheet", "r1", "--rater", "d2", "--out", str(path),
                                    "--db", url])  # fmt: skip
    assert made.exit_code == 0, made.output
    command = made.output.splitlines()[-1].strip()
    assert command == shlex.join(
        ["medfactory", "review", "import", "r1", str(path), "--rater", "d2", "--db", url]
    )
    _rewrite(path, _filled(path))
    again = CliRunner().invoke(cli, shlex.split(command)[1:])
    assert again.exit_code == 0, again.output
    assert "12 rated rows stored for d2" in again.output


def test_items_beyond_the_files_say_how_many_were_taken(tmp_path):
    from click.testing import CliRunner

    from medfactory.cli import cli

    url = f"sqlite:///{tmp_path / 'r.db'}"
    a, b = predictions(tmp_path, "base"), predictions(tmp_path, "lora")
    create = ["review", "create", "r1", "--a", str(a), "--b", str(b), "--raters", "d1,d2"]
    made = CliRunner().invoke(cli, [*create, "--items", "100", "--db", url])
    assert made.exit_code == 0, made.output
    assert "--items 100: the files hold 12 items, so all 12 were taken" in made.output
    assert "study r1: 2 versions, 12 items, 2 raters an item (d1 12, d2 12)" in made.output


def test_the_review_commands_write_no_file_themselves():
    """Writing is the review modules' (medfactory.reporting): a command parses and prints."""
    source = (Path(__file__).parents[2] / "medfactory" / "cli" / "review.py").read_text()
    for call in ("write_text", "write_bytes", '"w"', "mkdir", "json.dump"):
        assert call not in source, call


# --- the store ------------------------------------------------------------------


def test_a_store_from_a_newer_medfactory_is_refused(tmp_path):
    from medfactory.store import db as store_module

    url = f"sqlite:///{tmp_path / 'r.db'}"
    open_store(url).close()
    with open_store(url).session() as session:
        session.get(store_module.Meta, "schema_version").value = "99"
    with pytest.raises(StoreError, match="schema 99, newer than this medfactory's 6; upgrade"):
        open_store(url)


def test_a_schema_1_store_is_upgraded_in_place_and_keeps_its_studies(tmp_path):
    """A store written before the live A/B tables (schema 1) gains them on open, and the
    columns of single-answer studies (schema 3)."""
    import sqlalchemy as sa

    from medfactory.store.db import ACCESS_TABLES, LIVE_AB_TABLES

    url = f"sqlite:///{tmp_path / 'r.db'}"
    old = open_store(url)
    create_study(
        old,
        StudySpec(
            "kept", [predictions(tmp_path, "a"), predictions(tmp_path, "b")], ["d1"], overlap=1
        ),
    )
    with old.engine.begin() as connection:  # back to what schema 1 wrote
        for model in reversed((*LIVE_AB_TABLES, *ACCESS_TABLES)):
            model.__table__.drop(connection)
        for table, column in (
            ("studies", "kind"),
            ("items", "source"),
            ("arbitrations", "correction"),
        ):
            connection.execute(sa.text(f"alter table {table} drop column {column}"))
        connection.execute(sa.text("update medfactory_meta set value = '1'"))
    old.close()

    store = open_store(url)
    with store.engine.connect() as connection:
        tables = set(sa.inspect(connection).get_table_names())
        version = connection.execute(sa.text("select value from medfactory_meta")).scalar()
        kinds = connection.execute(sa.text("select kind from studies")).scalars().all()
        columns = {c["name"] for c in sa.inspect(connection).get_columns("arbitrations")}
    assert {m.__tablename__ for m in LIVE_AB_TABLES} <= tables and version == "6"
    assert kinds == ["pair"] and "correction" in columns
    assert status(store, "kept")["raters"] == {"d1": {"done": 0, "assigned": 12}}


def test_a_schema_3_store_gains_the_replica_and_passages_of_its_exchanges(tmp_path):
    import sqlalchemy as sa

    from deploy.gateway import Arm, Exchange
    from medfactory.ab.recorder import StoreRecorder

    url = f"sqlite:///{tmp_path / 'r.db'}"
    old = open_store(url)
    StoreRecorder(old, "ab", [Arm("a", "http://h", "m")]).record(
        Exchange("ab", "u1", "a", "m", "c1", [{"role": "user", "content": "头痛"}], False)
    )
    with old.engine.begin() as connection:  # back to what schema 3 wrote
        for column in ("replica", "passages"):
            connection.execute(sa.text(f"alter table exchanges drop column {column}"))
        connection.execute(sa.text("update medfactory_meta set value = '3'"))
    old.close()

    store = open_store(url)
    recorder = StoreRecorder(store, "ab", [Arm("a", "http://h+http://g", "m", rag="g")])
    sources = [{"file": "hypertension.md", "heading": "药物治疗", "start": 0, "end": 9}]
    recorder.record(
        Exchange(
            "ab",
            "u2",
            "a",
            "m",
            "c2",
            [{"role": "user", "content": "咳嗽"}],
            False,
            replica="http://g",
            passages=sources,
        )  # fmt: skip
    )
    with store.engine.connect() as connection:
        rows = connection.execute(
            sa.text("select user, replica, passages from exchanges order by id")
        ).all()
    assert [(user, replica) for user, replica, _ in rows] == [("u1", None), ("u2", "http://g")]
    stored = rows[1][2]
    assert rows[0][2] is None and (json.loads(stored) if isinstance(stored, str) else stored) == (
        sources
    )


def test_a_wrong_url_or_a_foreign_database_is_one_message(tmp_path):
    import sqlite3

    with pytest.raises(StoreError, match="not a database URL"):
        open_store("saves/review.db")
    foreign = tmp_path / "other.db"
    sqlite3.connect(foreign).execute("create table patients (id int)").connection.commit()
    with pytest.raises(StoreError, match="holds tables but is no medfactory store"):
        open_store(f"sqlite:///{foreign}")


# --- the report against an independent computation ----------------------------


def wilson_formula(k: int, n: int) -> tuple[float, float]:
    z = 1.959963984540054
    centre = (k + z * z / 2) / (n + z * z)
    half = z * math.sqrt(k * (n - k) / n + z * z / 4) / (n + z * z)
    return centre - half, centre + half


def kappa_by_hand(a: list, b: list, quadratic: bool = False) -> float:
    labels = sorted(set(a) | set(b))
    index = {label: i for i, label in enumerate(labels)}
    k = len(labels)
    observed = [[0.0] * k for _ in range(k)]
    for x, y in zip(a, b, strict=True):
        observed[index[x]][index[y]] += 1 / len(a)
    rows = [sum(r) for r in observed]
    cols = [sum(observed[i][j] for i in range(k)) for j in range(k)]

    def weight(i, j):
        return ((i - j) / (k - 1)) ** 2 if quadratic else float(i != j)

    disagreement = sum(weight(i, j) * observed[i][j] for i in range(k) for j in range(k))
    chance = sum(weight(i, j) * rows[i] * cols[j] for i in range(k) for j in range(k))
    return 1 - disagreement / chance


def test_the_report_equals_an_independent_computation(tmp_path):
    import random

    store = open_store(f"sqlite:///{tmp_path / 'r.db'}")
    files = [predictions(tmp_path, "base", count=60), predictions(tmp_path, "lora", count=60)]
    create_study(store, StudySpec("r", files, ["d1", "d2"], arbiter="boss", overlap=2, seed=5))
    raters = people(store)
    rng = random.Random(11)
    given = {}  # (rater, position) -> (verdict about lora, lora score, base score) on accuracy
    for name in ("d1", "d2"):
        with store.session() as session:
            positions = [i.position for i, _, _ in queue(session, raters[name])]
        for position in positions:
            choice = rng.choices(["lora", "base", "tie", "both_bad"], [5, 3, 1, 1])[0]
            lora_score, base_score = rng.randint(1, 5), rng.randint(1, 5)
            answers = shown(store, raters[name], position)
            lora_first = answers[0].startswith("lora")
            verdict = {"tie": "tie", "both_bad": "both_bad"}.get(choice) or (
                "1" if (choice == "lora") == lora_first else "2"
            )
            pair = (lora_score, base_score) if lora_first else (base_score, lora_score)
            scores = {a: pair for a in AXES}
            submit(store, raters[name].id, position, Submission(verdict, scores), None)
            given[name, position] = (choice, lora_score, base_score)
    report = build_report(store, "r")

    # Before arbitration: every rating counts once for each version.
    choices = [c for c, _, _ in given.values()]
    lora = report["before_arbitration"]["lora"]
    assert lora["n"] == len(choices) == 120
    assert lora["win"]["count"] == choices.count("lora")
    assert lora["loss"]["count"] == choices.count("base")
    assert report["before_arbitration"]["base"]["win"]["count"] == choices.count("base")
    low, high = wilson_formula(choices.count("lora"), len(choices))
    assert lora["win"]["low"] == pytest.approx(low) and lora["win"]["high"] == pytest.approx(high)

    # After: the shared verdict where both agree; disputed items left out.
    finals = [given["d1", p][0] for p in range(1, 61) if given["d1", p][0] == given["d2", p][0]]
    after = report["after_arbitration"]["lora"]
    assert after["n"] == len(finals) and after["win"]["count"] == finals.count("lora")
    assert report["unresolved"] == 60 - len(finals)

    # Agreement: plain formulas over the same ratings.
    verdicts = [[given[r, p][0] for p in range(1, 61)] for r in ("d1", "d2")]
    pair = report["agreement"]["pairs"]["d1 ~ d2"]
    assert pair["items"] == 60
    assert pair["verdict_kappa"] == pytest.approx(kappa_by_hand(*verdicts))
    scores = [
        [s for p in range(1, 61) for s in _left_right(store, p, given[r, p])] for r in ("d1", "d2")
    ]
    assert pair["accuracy_weighted_kappa"] == pytest.approx(kappa_by_hand(*scores, quadratic=True))

    # Scores per version, and the paired difference's mean.
    lora_scores = [s for _, s, _ in given.values()]
    assert report["axis_means"]["lora"]["accuracy"] == pytest.approx(sum(lora_scores) / 120)
    diff = report["paired_differences"]
    [(label, axes)] = diff.items()
    sign = 1 if label == "lora - base" else -1
    expected = sum(s - b for _, s, b in given.values()) / 120
    assert axes["accuracy"]["mean"] == pytest.approx(sign * expected)
    assert axes["accuracy"]["low"] < axes["accuracy"]["mean"] < axes["accuracy"]["high"]


def _left_right(store, position: int, rated: tuple) -> tuple[int, int]:
    """A rating's (left, right) scores, as the store keeps them."""
    _, lora_score, base_score = rated
    with store.session() as session:
        item = session.scalar(select(Item).where(Item.position == position))
        lora = session.scalar(select(Version.id).where(Version.name == "lora"))
    return (lora_score, base_score) if item.left_id == lora else (base_score, lora_score)


def test_an_empty_study_has_no_report_yet_and_unknown_names_are_listed(study):
    with pytest.raises(StudyError, match="study 'r1' has no ratings yet"):
        build_report(study, "r1")
    with pytest.raises(StudyError, match=r"no study 'r2' in this store \(studies: r1\)"):
        build_report(study, "r2")
    with pytest.raises(StudyError, match=r"r1 has no rater 'd9' \(raters: .*d1"):
        write_sheet(study, "r1", "d9", Path("x.csv"))


def test_a_report_with_one_raters_ratings_has_no_agreement_yet(study):
    d1 = people(study)["d1"]
    with study.session() as session:
        positions = [i.position for i, _, _ in queue(session, d1)][:3]
    for position in positions:
        rate_as_preferring(study, d1, "lora", position)
    report = build_report(study, "r1")
    assert report["agreement"]["pairs"] == {}
    assert set(report["agreement"]["overall"].values()) == {None}
    assert report["before_arbitration"]["lora"]["win"]["count"] == 3
